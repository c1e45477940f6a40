//! Reading a POST body: within `MAX_BODY_BYTES`, refused while reading rather than after, and
//! parsed into the request that travels on.

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use crate::auth::guardrail::refuse_caller_choice;
use crate::error::ProxyError;
use crate::translate::request::{parse_request, Endpoint, MessagesRequest};
use crate::AppState;

/// The preamble of both POST handlers: the body read (within `MAX_BODY_BYTES`) and checked,
/// and no guardrail of the caller's own choosing in its headers or body. The bytes are let go
/// at once; the parsed request is what travels on.
pub(crate) async fn read_request(
    state: &AppState,
    body: Body,
    headers: &HeaderMap,
    endpoint: Endpoint,
) -> Result<MessagesRequest, ProxyError> {
    let bytes = read_body(body, headers, state.config.max_body_bytes).await?;
    checked(&bytes, headers, endpoint)
}

/// The body parsed, with no guardrail of the caller's own choosing in it or its headers.
fn checked(bytes: &[u8], headers: &HeaderMap, endpoint: Endpoint) -> Result<MessagesRequest, ProxyError> {
    let request = parse_request(bytes, endpoint)?;
    refuse_caller_choice(headers, &request)?;
    Ok(request)
}

/// What the Messages handler needs to know of a body besides its parse.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyFacts {
    /// Its size in bytes (a tight budget's input estimate).
    pub bytes: usize,
    /// It marks a cache block `"ttl": "1h"` (how cache writes of unknown split are priced).
    pub asks_1h_cache: bool,
}

/// [`read_request`] for `POST /v1/messages`, with the facts of the bytes.
pub(crate) async fn read_messages_request(
    state: &AppState,
    body: Body,
    headers: &HeaderMap,
) -> Result<(MessagesRequest, BodyFacts), ProxyError> {
    let bytes = read_body(body, headers, state.config.max_body_bytes).await?;
    let facts = BodyFacts {
        bytes: bytes.len(),
        asks_1h_cache: asks_1h_cache(&bytes),
    };
    Ok((checked(&bytes, headers, Endpoint::Messages)?, facts))
}

/// `"ttl": "1h"` anywhere in the JSON (a string inside a prompt would have its quotes escaped).
fn asks_1h_cache(bytes: &[u8]) -> bool {
    memchr::memmem::find_iter(bytes, b"\"ttl\"").any(|at| {
        let rest = &bytes[at + 5..];
        let rest = rest.trim_ascii_start();
        rest.strip_prefix(b":")
            .is_some_and(|value| value.trim_ascii_start().starts_with(b"\"1h\""))
    })
}

/// Reads the body up to `limit` bytes, refusing larger ones while reading, not after.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ProxyError> {
    let too_large =
        || ProxyError::RequestTooLarge(format!("request body is larger than {limit} bytes (MAX_BODY_BYTES)"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ProxyError::InvalidRequest(format!(
            "could not read the request body: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_one_hour_cache_ttl_is_found_but_not_in_prompt_text() {
        assert!(super::asks_1h_cache(
            br#"{"system":[{"cache_control":{"type":"ephemeral","ttl": "1h"}}]}"#
        ));
        assert!(!super::asks_1h_cache(
            br#"{"cache_control":{"type":"ephemeral","ttl":"5m"}}"#
        ));
        assert!(!super::asks_1h_cache(
            br#"{"messages":[{"content":"say \"ttl\": \"1h\""}]}"#
        ));
    }
}
