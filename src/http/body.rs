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
    let request = parse_request(&bytes, endpoint)?;
    refuse_caller_choice(headers, &request)?;
    Ok(request)
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
