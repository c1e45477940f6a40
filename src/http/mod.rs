//! The one router both transports serve: routes, handlers, and the layers every request passes
//! through (request id and log line, panic catching, auth, and local-only CORS).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::{json, Value};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::tokens::Caller;
use crate::error::{ErrorReport, ProxyError};
use crate::sse::SseBody;
use crate::translate::heal::send_healing;
use crate::translate::request::{parse_request, to_upstream, Endpoint, MessagesRequest, UpstreamRequest};
use crate::translate::rules::Upstream;
use crate::upstream::deadline::Deadline;
use crate::upstream::invoke::{Bedrock, StartedStream};
use crate::usage::request_log::{RequestLog, Usage};
use crate::AppState;

pub mod request_id;
pub mod serve;

/// The response header carrying our request id, as Anthropic's API does.
pub const REQUEST_ID_HEADER: &str = "request-id";

/// Builds the router. Tests call it directly with `tower::ServiceExt::oneshot`.
pub fn app(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model))
        .route("/health", get(health));
    with_layers(routes, state)
}

/// Wraps routes in what every request passes through, outermost first: CORS (local only,
/// opt-in), request id and log line, panic catching, and auth. Public so tests can put a
/// deliberately panicking route behind the real stack.
pub fn with_layers(routes: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    let mut router = routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        // Unwinding must stay on (no panic = abort in the release profile) for this to work.
        .layer(CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| {
            ProxyError::Internal("a handler panicked".into()).into_response()
        }))
        .layer(middleware::from_fn(request_context))
        .with_state(state.clone());
    // Inside Lambda the Function URL owns CORS; headers from us too would be duplicates,
    // which browsers reject. Locally, CORS is opt-in for browser use.
    if !state.config.in_lambda && !state.config.cors_allow_origins.is_empty() {
        router = router.layer(cors_layer(&state.config.cors_allow_origins));
    }
    router
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-api-key"),
            header::HeaderName::from_static("anthropic-version"),
            header::HeaderName::from_static("anthropic-beta"),
        ])
        .expose_headers([header::HeaderName::from_static(REQUEST_ID_HEADER)])
}

/// Gives every request an id and a log record, and every response the `request-id` header.
async fn request_context(mut req: Request, next: Next) -> Response {
    let request_id = crate::http::request_id::new();
    let log = RequestLog::new(&request_id, req.method().as_str(), req.uri().path());
    req.extensions_mut().insert(log.clone());
    let mut response = match header_bytes(req.headers()) {
        n if n > MAX_HEADER_BYTES => ProxyError::HeadersTooLarge(format!(
            "request headers are {n} bytes; at most {MAX_HEADER_BYTES} are accepted"
        ))
        .into_response(),
        _ => next.run(req).await,
    };
    log.status(response.status().as_u16());
    let report = response.extensions_mut().remove::<ErrorReport>();
    if let Some(report) = &report {
        log.error_type(report.kind);
    }
    if let Some(detail) = report.as_ref().and_then(|r| r.detail.clone()) {
        log.error(detail);
    }
    match report.and_then(|r| r.outcome) {
        Some(outcome) => log.outcome(outcome),
        None if response.status().is_client_error() => log.outcome("rejected"),
        None if response.status().is_server_error() => log.outcome("error"),
        None => {}
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Headers larger than this get an Anthropic-shaped 431; Claude Code and the SDKs send a few
/// KiB. It stays under local mode's hyper buffer (`serve::MAX_BUF_BYTES`, 16 KiB, which must
/// also hold the request line), above which hyper refuses a request on its own, without our
/// error shape; so do Lambda Function URLs, at their own limit.
pub const MAX_HEADER_BYTES: usize = 12 * 1024;

fn header_bytes(headers: &HeaderMap) -> usize {
    headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum()
}

/// Every route but `GET /health` needs a valid token. Unknown routes need one too, so that
/// nothing about the API is told to anonymous callers.
async fn require_token(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Result<Response, ProxyError> {
    let is_health = req.uri().path() == "/health" && matches!(*req.method(), Method::GET | Method::HEAD);
    if is_health {
        return Ok(next.run(req).await);
    }
    let presented = presented_tokens(req.headers());
    let presented: Vec<&str> = presented.iter().map(String::as_str).collect();
    let caller = state.tokens.authenticate(&presented).await?;
    if let Some(log) = req.extensions().get::<RequestLog>() {
        log.caller(&caller.name);
    }
    // The handlers read the caller's policy from here.
    let mut req = req;
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// The tokens a caller sent: `Authorization: Bearer <t>` and/or `x-api-key: <t>`.
fn presented_tokens(headers: &HeaderMap) -> Vec<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
        });
    let api_key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string());
    bearer.into_iter().chain(api_key).collect()
}

/// The preamble of both POST handlers: the body read (within `MAX_BODY_BYTES`) and checked.
/// The bytes are let go at once; the parsed request is what travels on.
async fn read_request(
    state: &AppState,
    body: Body,
    headers: &HeaderMap,
    endpoint: Endpoint,
) -> Result<MessagesRequest, ProxyError> {
    let bytes = read_body(body, headers, state.config.max_body_bytes).await?;
    parse_request(&bytes, endpoint)
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

fn unknown_model(name: &str) -> ProxyError {
    ProxyError::NotFound(format!(
        "model {name:?} is not a Claude model this proxy can map to Bedrock; use a Claude model name \
         (e.g. claude-sonnet-4-5), a Bedrock model or inference-profile ID, or map it with MODEL_MAP, \
         e.g. MODEL_MAP='{{\"{name}\": \"us.anthropic.claude-sonnet-4-5-20250929-v1:0\"}}'"
    ))
}

fn beta_headers(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers.get_all("anthropic-beta").iter().filter_map(|v| v.to_str().ok())
}

/// Resolves the model `name` (the caller's, or a fallback target) and applies the rules table:
/// the request as `upstream` should get it.
fn upstream_request(
    state: &AppState,
    request: MessagesRequest,
    headers: &HeaderMap,
    log: &RequestLog,
    upstream: Upstream,
    name: &str,
) -> Result<UpstreamRequest, ProxyError> {
    // Claude Code's `[1m]` names ask for the 1M-token context window, which Bedrock takes as
    // a beta flag on the plain model.
    let (name, context_1m) = crate::translate::models::split_context_suffix(name);
    let resolved = state.models.resolve(name).map_err(|e| unknown_model(&e.0))?;
    let model_id = match upstream {
        Upstream::Invoke => resolved,
        // Mantle names models without a region prefix (`anthropic.claude-opus-5-5`).
        Upstream::Mantle => crate::translate::models::base_model_id(&resolved).to_string(),
    };
    log.model(&request.model, &model_id, request.stream);
    let extra = context_1m.then_some(crate::translate::models::CONTEXT_1M_BETA);
    let headers = beta_headers(headers).chain(extra);
    Ok(to_upstream(request, upstream, &model_id, headers, &state.betas))
}

/// The model is one this proxy knows and the caller's policy allows (by the name asked and the
/// ID it resolves to).
fn check_model(state: &AppState, caller: &Caller, request: &MessagesRequest) -> Result<(), ProxyError> {
    let (name, _) = crate::translate::models::split_context_suffix(&request.model);
    let resolved = state.models.resolve(name).map_err(|e| unknown_model(&e.0))?;
    caller.policy.check_model(name, &resolved)
}

/// The caller's policy applied before anything is sent upstream: the model, `max_tokens`, and
/// (with `USAGE_TABLE`) the token budgets, whose spend this request is then charged to.
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
        budgets.check(&caller.name, policy).await?;
        if policy.has_budget() {
            log.charge_to(budgets.clone(), &caller.name);
        }
    }
    Ok(())
}

/// What one model gave: a stream that has begun, or the whole answer.
enum Answer {
    Stream(StartedStream),
    Whole(Bytes),
}

/// Sends the request to one model (`name`) on the configured upstream, healing once if needed.
async fn ask(
    state: &AppState,
    bedrock: &Bedrock,
    request: MessagesRequest,
    headers: &HeaderMap,
    log: &RequestLog,
    name: &str,
) -> Result<Answer, ProxyError> {
    let api = state.config.bedrock_api;
    let stream = request.stream;
    let upstream = upstream_request(state, request, headers, log, api, name)?;
    let model_id = upstream.model_id.clone();
    let (mantle, healer, policy) = (&state.mantle, &state.healer, bedrock.policy());
    let ping = state.config.ping_interval;
    let model_id = &model_id;
    let answer = match (api, stream) {
        (Upstream::Invoke, true) => Answer::Stream(
            send_healing(healer, upstream, log, |body, betas| async move {
                bedrock.invoke_stream(model_id, &body, betas, ping).await
            })
            .await?,
        ),
        (Upstream::Mantle, true) => Answer::Stream(
            send_healing(healer, upstream, log, |body, betas| async move {
                mantle.messages_stream(policy, &body, betas, ping, log).await
            })
            .await?,
        ),
        (Upstream::Invoke, false) => Answer::Whole(
            send_healing(healer, upstream, log, |body, betas| async move {
                bedrock.invoke(model_id, &body, betas).await
            })
            .await?,
        ),
        (Upstream::Mantle, false) => Answer::Whole(
            send_healing(healer, upstream, log, |body, betas| async move {
                mantle.messages(policy, &body, betas).await
            })
            .await?,
        ),
    };
    Ok(answer)
}

/// `POST /v1/messages` (any query string; Claude Code sends `?beta=true`).
async fn messages(
    State(state): State<Arc<AppState>>,
    Extension(log): Extension<RequestLog>,
    Extension(caller): Extension<Caller>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ProxyError> {
    let request = read_request(&state, body, &headers, Endpoint::Messages).await?;
    admit(&state, &caller, &request, &log).await?;
    // Inside Lambda the invocation's deadline bounds the whole answer (see deadline.rs).
    let deadline = Deadline::of_invocation(&extensions, state.config.lambda_deadline_margin);
    let bedrock = state.bedrock.for_request(deadline, &log);

    // The caller's model, then its MODEL_FALLBACKS targets while Bedrock throttles or is
    // unavailable (after each target's own retries). Nothing has reached the caller yet.
    let model = request.model.clone();
    let (name, _) = crate::translate::models::split_context_suffix(&model);
    let fallbacks = state.config.model_fallbacks.targets(name);
    let targets = std::iter::once(model.as_str()).chain(fallbacks.iter().map(String::as_str));
    let mut request = request;
    let mut answer = Err(ProxyError::Internal("no model to ask".into()));
    for (i, target) in targets.enumerate() {
        if i > 0 {
            log.fell_back();
            tracing::warn!(model = %model, fallback = target, "bedrock throttled or unavailable; trying the next MODEL_FALLBACKS target");
        }
        // The last target gets the request itself; only earlier ones need a copy of its tree.
        let this = if i == fallbacks.len() {
            std::mem::take(&mut request)
        } else {
            request.clone()
        };
        answer = ask(&state, &bedrock, this, &headers, &log, target).await;
        let busy = matches!(answer, Err(ProxyError::RateLimited(_) | ProxyError::Overloaded(_)));
        if !busy || i == fallbacks.len() {
            break;
        }
    }

    match answer? {
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
            let (answer, usage) = crate::translate::request::from_bedrock_response(answer)?;
            if let Some(usage) = usage {
                log.usage(usage);
            }
            log.first_token();
            Ok(([(header::CONTENT_TYPE, "application/json")], answer).into_response())
        }
    }
}

/// `POST /v1/messages/count_tokens`. On InvokeModel, models Bedrock Runtime's CountTokens
/// refuses ("AWS counts some newer Claude models only on bedrock-mantle", as Claude Code puts
/// it) are counted on Mantle, and remembered so that the next count goes there directly.
async fn count_tokens(
    State(state): State<Arc<AppState>>,
    Extension(log): Extension<RequestLog>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ProxyError> {
    let request = read_request(&state, body, &headers, Endpoint::CountTokens).await?;
    check_model(&state, &caller, &request)?;
    let input_tokens = match state.config.bedrock_api {
        Upstream::Mantle => count_on_mantle(&state, request, &headers, &log).await?,
        Upstream::Invoke => match count_on_runtime(&state, request.clone(), &headers, &log).await {
            Ok(n) => n,
            Err(RuntimeCount::NotCounted(model_id)) => {
                state.mantle.count_here_from_now_on(&model_id);
                count_on_mantle(&state, request, &headers, &log).await?
            }
            Err(RuntimeCount::CountedOnMantle) => count_on_mantle(&state, request, &headers, &log).await?,
            Err(RuntimeCount::Failed(e)) => return Err(e),
        },
    };
    log.usage(Usage {
        input: input_tokens,
        ..Usage::default()
    });
    Ok(Json(json!({ "input_tokens": input_tokens })).into_response())
}

/// Why Bedrock Runtime gave no count.
enum RuntimeCount {
    /// Runtime does not count this model (its ID is given).
    NotCounted(String),
    /// An earlier request learned that this model is counted on Mantle.
    CountedOnMantle,
    /// Any other failure, for the caller.
    Failed(ProxyError),
}

async fn count_on_runtime(
    state: &AppState,
    request: MessagesRequest,
    headers: &HeaderMap,
    log: &RequestLog,
) -> Result<u64, RuntimeCount> {
    let model = request.model.clone();
    let mut upstream =
        upstream_request(state, request, headers, log, Upstream::Invoke, &model).map_err(RuntimeCount::Failed)?;
    // CountTokens takes a complete InvokeModel body, which needs max_tokens; the value does
    // not change the count, but it must exceed any thinking budget or Bedrock refuses it.
    let budget = upstream
        .body
        .get("thinking")
        .and_then(|t| t.get("budget_tokens"))
        .and_then(Value::as_u64);
    upstream
        .body
        .entry("max_tokens")
        .or_insert(json!(budget.map_or(1, |b| b + 1)));
    let model_id = upstream.model_id.clone();
    if state.mantle.counts(&model_id) {
        return Err(RuntimeCount::CountedOnMantle);
    }
    let bedrock = &state.bedrock.for_request(None, log);
    // CountTokens reads only the body; flags for the header have no effect there.
    let counted = send_healing(&state.healer, upstream, log, |body, _betas| {
        let model_id = &model_id;
        async move { bedrock.count_tokens(model_id, &body).await }
    })
    .await;
    match counted {
        Ok(n) => Ok(n),
        Err(e) if runtime_does_not_count(&e) => Err(RuntimeCount::NotCounted(model_id)),
        Err(e) => Err(RuntimeCount::Failed(e)),
    }
}

/// Bedrock Runtime's refusal of a model it does not count (pydantic-ai#4001, bifrost#2169),
/// under its profile ID and its base ID (`Bedrock::count_tokens` tried both).
fn runtime_does_not_count(error: &ProxyError) -> bool {
    matches!(error, ProxyError::CountTokensUnsupported(_))
}

async fn count_on_mantle(
    state: &AppState,
    request: MessagesRequest,
    headers: &HeaderMap,
    log: &RequestLog,
) -> Result<u64, ProxyError> {
    let model = request.model.clone();
    let upstream = upstream_request(state, request, headers, log, Upstream::Mantle, &model)?;
    let mantle = &state.mantle;
    let policy = &state.bedrock.policy().for_request(None, log);
    send_healing(&state.healer, upstream, log, |body, betas| async move {
        mantle.count_tokens(policy, &body, betas).await
    })
    .await
}

#[derive(Debug, Deserialize)]
struct ListParams {
    limit: Option<usize>,
    after_id: Option<String>,
    before_id: Option<String>,
}

/// `GET /v1/models`, in Anthropic's list shape with `limit`/`after_id`/`before_id` paging.
async fn list_models(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<ListParams>,
) -> Result<Response, ProxyError> {
    // Only what this caller may use.
    let mut all = crate::translate::models::catalog(state.models.map());
    all.retain(|m| {
        let resolved = state.models.resolve(&m.id).unwrap_or_default();
        caller.policy.allows_model(&m.id, &resolved)
    });
    let limit = params.limit.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(ProxyError::InvalidRequest("limit: must be between 1 and 1000".into()));
    }
    let position = |id: &str| {
        all.iter()
            .position(|m| m.id == id)
            .ok_or_else(|| ProxyError::InvalidRequest(format!("no model with id {id:?} to page from")))
    };
    let (page, has_more) = match (&params.after_id, &params.before_id) {
        (Some(_), Some(_)) => {
            return Err(ProxyError::InvalidRequest(
                "send after_id or before_id, not both".into(),
            ))
        }
        (Some(after), None) => {
            let start = position(after)? + 1;
            let end = (start + limit).min(all.len());
            (&all[start..end], end < all.len())
        }
        (None, Some(before)) => {
            let end = position(before)?;
            let start = end.saturating_sub(limit);
            (&all[start..end], start > 0)
        }
        (None, None) => {
            let end = limit.min(all.len());
            (&all[..end], end < all.len())
        }
    };
    Ok(Json(json!({
        "data": page,
        "has_more": has_more,
        "first_id": page.first().map(|m| m.id.clone()),
        "last_id": page.last().map(|m| m.id.clone()),
    }))
    .into_response())
}

/// `GET /v1/models/{id}`.
async fn get_model(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Response, ProxyError> {
    crate::translate::models::catalog_entry(&id, &state.models)
        .map(|m| Json(m).into_response())
        .ok_or_else(|| ProxyError::NotFound(format!("model {id:?} not found")))
}

/// `GET /health`: no auth, no upstream call; says the process is up.
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn not_found(uri: axum::http::Uri) -> ProxyError {
    ProxyError::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed() -> ProxyError {
    ProxyError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_auth_headers_are_read() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  tok1 "));
        h.insert("x-api-key", HeaderValue::from_static("tok2"));
        assert_eq!(presented_tokens(&h), vec!["tok1", "tok2"]);
        let mut basic = HeaderMap::new();
        basic.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(presented_tokens(&basic).is_empty());
    }
}
