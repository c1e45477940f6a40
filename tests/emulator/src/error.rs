//! Bedrock's error responses: the exception names, their HTTP statuses and the
//! `x-amzn-ErrorType` + `{"message": ...}` shape the AWS SDK parses.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The namespace Bedrock appends to `x-amzn-ErrorType`; the SDK keeps only the part
/// before the colon, so the suffix is there to prove the proxy does not depend on it.
const ERROR_TYPE_SUFFIX: &str = ":http://internal.amazon.com/coral/com.amazon.bedrock/";

/// Every pre-stream exception the emulator can return: name, status and a default
/// message worded like Bedrock's.
const EXCEPTIONS: &[(&str, u16, &str)] = &[
    (
        "ValidationException",
        400,
        "Malformed input request, please reformat your input and try again.",
    ),
    (
        "ServiceQuotaExceededException",
        400,
        "Your request exceeded the service quota for your account. Request a quota increase.",
    ),
    (
        "AccessDeniedException",
        403,
        "You don't have access to the model with the specified model ID.",
    ),
    (
        "ResourceNotFoundException",
        404,
        "Could not resolve the foundation model from the provided model identifier.",
    ),
    (
        "ModelTimeoutException",
        408,
        "Model has timed out in processing the request. Try your request again.",
    ),
    (
        "ModelErrorException",
        424,
        "The model returned an error while processing the request.",
    ),
    (
        "ModelStreamErrorException",
        424,
        "The model stream encountered an error.",
    ),
    (
        "ThrottlingException",
        429,
        "Too many requests, please wait before trying again.",
    ),
    (
        "ModelNotReadyException",
        429,
        "Model is not ready to serve inference requests. The AWS SDK will automatically retry the operation.",
    ),
    (
        "InternalServerException",
        500,
        "The system encountered an unexpected error during processing. Try your request again.",
    ),
    (
        "ServiceUnavailableException",
        503,
        "Bedrock is unable to process your request.",
    ),
];

/// A Bedrock exception answered before any response byte of the operation itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedrockError {
    /// Exception name as it appears in `x-amzn-ErrorType`, e.g. `ThrottlingException`.
    pub name: String,
    /// HTTP status Bedrock uses for this exception.
    pub status: StatusCode,
    /// The `message` field of the JSON body.
    pub message: String,
}

impl BedrockError {
    /// A 400 `ValidationException` with Bedrock's wording for the problem.
    pub fn validation(message: impl Into<String>) -> Self {
        Self {
            name: "ValidationException".to_owned(),
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// The 400 Bedrock answers for a model id it cannot resolve.
    pub fn invalid_model() -> Self {
        Self::validation("The provided model identifier is invalid.")
    }

    /// The 400 Runtime's CountTokens answers for a model it does not count: inference
    /// profiles and the models AWS counts only on Mantle (see
    /// [`crate::validate::runtime_counts_tokens`]). Wording from pydantic/pydantic-ai#4001
    /// and maximhq/bifrost#2169.
    pub fn cannot_count_tokens() -> Self {
        Self::validation("The provided model doesn't support counting tokens.")
    }

    /// A 403 for a request the SDK did not sign: the proxy must never send one.
    pub fn missing_signature() -> Self {
        Self {
            name: "AccessDeniedException".to_owned(),
            status: StatusCode::FORBIDDEN,
            message: "missing signature".to_owned(),
        }
    }

    /// The exception called `name` with its default message. An unknown name becomes a
    /// 500 whose message names the typo, so a wrong directive fails loudly in a test.
    pub fn named(name: &str) -> Self {
        match EXCEPTIONS.iter().find(|(known, _, _)| *known == name) {
            Some((known, status, message)) => Self {
                name: (*known).to_owned(),
                status: StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
                message: (*message).to_owned(),
            },
            None => Self {
                name: "InternalServerException".to_owned(),
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("emulator: unknown exception name {name:?}"),
            },
        }
    }
}

impl IntoResponse for BedrockError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(json!({ "message": self.message }))).into_response();
        let error_type = format!("{}{ERROR_TYPE_SUFFIX}", self.name);
        if let Ok(value) = HeaderValue::from_str(&error_type) {
            response.headers_mut().insert("x-amzn-errortype", value);
        }
        response
            .headers_mut()
            .insert("x-amzn-requestid", crate::ids::request_id_header());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_keep_bedrock_statuses() {
        assert_eq!(BedrockError::named("ThrottlingException").status, 429);
        assert_eq!(BedrockError::named("ModelNotReadyException").status, 429);
        assert_eq!(BedrockError::named("ServiceQuotaExceededException").status, 400);
        assert_eq!(BedrockError::named("ServiceUnavailableException").status, 503);
        assert_eq!(BedrockError::named("ModelTimeoutException").status, 408);
    }

    #[test]
    fn unknown_names_fail_loudly() {
        let error = BedrockError::named("NoSuchException");
        assert_eq!(error.status, 500);
        assert!(error.message.contains("NoSuchException"));
    }
}
