//! `POST /v1/messages` (and `POST /`): admit the request under the caller's policy, hand it
//! to the upstream, and answer with its stream or its whole answer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::ProxyError;
use crate::http::body::read_request;
use crate::sse::SseBody;
use crate::translate::answer::GUARDRAIL_INTERVENED;
use crate::translate::request::{Endpoint, MessagesRequest};
use crate::upstream::deadline::Deadline;
use crate::upstream::{Answer, Call};
use crate::usage::request_log::RequestLog;
use crate::AppState;

/// `POST /v1/messages` (any query string; Claude Code sends `?beta=true`).
pub(crate) async fn messages(
    State(state): State<Arc<AppState>>,
    Extension(log): Extension<RequestLog>,
    Extension(caller): Extension<Caller>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ProxyError> {
    let request = read_request(&state, body, &headers, Endpoint::Messages).await?;
    admit(&state, &caller, &request, &log).await?;
    // Inside Lambda the invocation's deadline bounds the whole answer (see upstream/deadline.rs).
    let deadline = Deadline::of_invocation(&extensions, state.config.lambda_deadline_margin);
    let call = Call {
        caller: &caller,
        headers: &headers,
        log: &log,
        deadline,
    };
    match state.upstream.send(request, &call).await? {
        Answer::Stream(started) => {
            let ping = state.config.ping_interval;
            let stream = SseBody::new(started, ping, state.config.upstream_timeout, deadline, log);
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::from_stream(stream))
                .map_err(|e| ProxyError::Internal(format!("building the stream response: {e}")))
        }
        Answer::Whole(answer) => {
            let answer = crate::translate::request::from_bedrock_response(answer)?;
            if let Some(usage) = answer.usage {
                log.usage(usage);
            }
            if answer.guardrail_intervened {
                log.outcome(GUARDRAIL_INTERVENED);
            }
            log.first_token();
            Ok(([(header::CONTENT_TYPE, "application/json")], answer.body).into_response())
        }
    }
}

/// The model is one this proxy knows and the caller's policy allows (by the name asked and the
/// ID it resolves to).
pub(crate) fn check_model(state: &AppState, caller: &Caller, request: &MessagesRequest) -> Result<(), ProxyError> {
    let (name, _) = crate::translate::models::split_context_suffix(&request.model);
    let resolved = state.upstream.resolve(name)?;
    caller.policy.check_model(name, &resolved)
}

/// The caller's policy applied before anything is sent upstream: the model, `max_tokens`, and
/// (with `USAGE_TABLE`) the token budgets, the caller's own and its groups' pools, whose
/// spend this request is then charged to.
async fn admit(
    state: &AppState,
    caller: &Caller,
    request: &MessagesRequest,
    log: &RequestLog,
) -> Result<(), ProxyError> {
    let policy = &caller.policy;
    check_model(state, caller, request)?;
    policy.check_max_tokens(request.body.get("max_tokens").and_then(Value::as_u64))?;
    if let Some(budgets) = &state.budgets {
        let accounts = budgets.admit(caller).await?;
        if !accounts.is_empty() {
            log.charge_to(budgets.clone(), accounts);
        }
    }
    Ok(())
}
