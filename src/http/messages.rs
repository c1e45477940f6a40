//! `POST /v1/messages` (and `POST /`): admit the request under the caller's policy and budgets,
//! hand it to the upstream, and answer with its stream or its whole answer; the request's
//! charge is settled before the answer ends.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::ProxyError;
use crate::http::body::{read_messages_request, BodyFacts};
use crate::sse::SseBody;
use crate::translate::answer::GUARDRAIL_INTERVENED;
use crate::translate::request::MessagesRequest;
use crate::upstream::deadline::Deadline;
use crate::upstream::{Answer, Call};
use crate::usage::budgets::{self, Spend};
use crate::usage::charge::{self, Charge};
use crate::usage::cost::{estimate_input_tokens, worst_case_usd, Usd};
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
    let (request, facts) = read_messages_request(&state, body, &headers).await?;
    log.priced_by(state.prices.clone(), facts.asks_1h_cache);
    let standing = admit(&state, &caller, &request, facts, &log).await?;
    // Inside Lambda the invocation's deadline bounds the whole answer (see upstream/deadline.rs).
    let deadline = Deadline::of_invocation(&extensions, state.config.lambda_deadline_margin);
    let call = Call {
        caller: &caller,
        headers: &headers,
        log: &log,
        deadline,
    };
    let answer = match state.upstream.send(request, &call).await {
        Ok(answer) => answer,
        Err(e) => {
            // Nothing was used; a reservation is given back before the error leaves.
            charge::settle(&log).await;
            return Err(e);
        }
    };
    let mut response = match answer {
        Answer::Stream(started) => {
            let ping = state.config.ping_interval;
            // The stream settles the charge itself, before its last frame.
            let stream = SseBody::new(started, ping, state.config.upstream_timeout, deadline, log);
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::from_stream(stream))
                .map_err(|e| ProxyError::Internal(format!("building the stream response: {e}")))?
        }
        Answer::Whole(answer) => {
            let finished = crate::translate::request::from_bedrock_response(answer);
            if let Ok(answer) = &finished {
                if let Some(usage) = answer.usage {
                    log.usage(usage);
                }
                if answer.guardrail_intervened {
                    log.outcome(GUARDRAIL_INTERVENED);
                }
            }
            log.first_token();
            charge::settle(&log).await;
            ([(header::CONTENT_TYPE, "application/json")], finished?.body).into_response()
        }
    };
    for (name, value) in standing {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(HeaderName::from_static(name), value);
        }
    }
    Ok(response)
}

/// The model is one this proxy knows and the caller's policy allows (by the name asked and the
/// ID it resolves to).
pub(crate) fn check_model(state: &AppState, caller: &Caller, request: &MessagesRequest) -> Result<(), ProxyError> {
    let (name, _) = crate::translate::models::split_context_suffix(&request.model);
    let resolved = state.upstream.resolve(name)?;
    caller.policy.check_model(name, &resolved)
}

/// The caller's policy applied before anything is sent upstream: the model, `max_tokens`, and
/// (with `USAGE_TABLE`) the budgets, which the request is then charged to. Returns the
/// `anthropic-ratelimit-unified-*` headers that say where the caller stands.
async fn admit(
    state: &AppState,
    caller: &Caller,
    request: &MessagesRequest,
    facts: BodyFacts,
    log: &RequestLog,
) -> Result<Vec<(&'static str, String)>, ProxyError> {
    let policy = &caller.policy;
    check_model(state, caller, request)?;
    let max_tokens = request.body.get("max_tokens").and_then(Value::as_u64);
    policy.check_max_tokens(max_tokens)?;
    let Some(budgets) = &state.budgets else {
        return Ok(Vec::new());
    };
    // The caller's own budget, its groups' shared pools (JWT callers) and the deployment's.
    let accounts = budgets::accounts(&caller.name, policy, &caller.pools, &state.config.deployment_budget);
    if accounts.is_empty() {
        return Ok(Vec::new());
    }
    let (name, _) = crate::translate::models::split_context_suffix(&request.model);
    let resolved = state.upstream.resolve(name)?;
    let input = estimate_input_tokens(facts.bytes);
    let max_tokens = max_tokens.unwrap_or(0);
    let worst_usd = match state.prices.lookup(name, &resolved) {
        Some(price) => Usd::from_dollars_ceil(worst_case_usd(&price, input, max_tokens)),
        // A dollar budget cannot be kept for a model whose price is unknown: refused, not guessed.
        None if accounts.iter().any(|a| a.limits.in_dollars()) => {
            return Err(ProxyError::PermissionDenied(format!(
                "model {name:?} ({resolved}) has no price in this proxy, so the dollar budget of this token cannot \
                 be kept; use a priced model, or ask the operator to price it with MODEL_PRICES"
            )))
        }
        None => Usd(0),
    };
    let worst = Spend {
        tokens: input.saturating_add(max_tokens),
        usd: worst_usd,
    };
    let admission = budgets.admit(accounts, worst).await?;
    let standing = admission.headers();
    log.hold_charge(Charge::new(budgets.clone(), admission));
    Ok(standing)
}
