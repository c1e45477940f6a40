//! `POST /v1/messages/count_tokens`: the caller's model check, then the upstream's count.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use crate::auth::Caller;
use crate::error::ProxyError;
use crate::http::body::read_request;
use crate::http::messages::check_model;
use crate::translate::request::Endpoint;
use crate::upstream::Call;
use crate::usage::request_log::{RequestLog, Usage};
use crate::AppState;

/// `POST /v1/messages/count_tokens`.
pub(crate) async fn count_tokens(
    State(state): State<Arc<AppState>>,
    Extension(log): Extension<RequestLog>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ProxyError> {
    let request = read_request(&state, body, &headers, Endpoint::CountTokens).await?;
    check_model(&state, &caller, &request)?;
    let call = Call {
        caller: &caller,
        headers: &headers,
        log: &log,
        deadline: None,
    };
    let input_tokens = state.upstream.count(request, &call).await?;
    log.usage(Usage {
        input: input_tokens,
        ..Usage::default()
    });
    Ok(Json(json!({ "input_tokens": input_tokens })).into_response())
}
