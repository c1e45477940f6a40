//! What every request passes through, outermost first: CORS (local only, opt-in), the request
//! id and log line, the header size limit, panic catching, and auth.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::error::{ErrorReport, ProxyError};
use crate::usage::request_log::RequestLog;
use crate::AppState;

/// The response header carrying our request id, as Anthropic's API does.
pub const REQUEST_ID_HEADER: &str = "request-id";

/// Wraps routes in what every request passes through, outermost first: CORS (local only,
/// opt-in), request id and log line, panic catching, and auth. Public so tests can put a
/// deliberately panicking route behind the real stack.
pub fn with_layers(routes: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    let mut router = routes
        .fallback(super::not_found)
        .method_not_allowed_fallback(super::method_not_allowed)
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

/// The local CORS layer. Request headers are mirrored from the preflight: the official
/// TypeScript SDK in a browser sends `anthropic-dangerous-direct-browser-access` and a dozen
/// `x-stainless-*` headers that change between versions, and a fixed list makes Chromium
/// refuse the request after the preflight. Auth is by header, never cookies, so no
/// credentials mode is involved. `request-id` and `retry-after` are readable by the SDK.
fn cors_layer(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            header::HeaderName::from_static(REQUEST_ID_HEADER),
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-should-retry"),
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

/// Gives every request an id and a log record, and every response the `request-id` header.
async fn request_context(mut req: Request, next: Next) -> Response {
    let request_id = crate::http::request_id::new();
    let log = RequestLog::new(&request_id, req.method().as_str(), req.uri().path());
    {
        let headers = req.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        log.session(header("x-claude-code-session-id"), header("x-claude-code-agent-id"));
    }
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
    let mut presented: Vec<&str> = presented.iter().map(String::as_str).filter(|t| !t.is_empty()).collect();
    presented.dedup();
    // Claude Code and the SDKs may send the same key in both headers; two different ones are
    // a confused client or a probe, and neither is let through on whichever one happens to match.
    if presented.len() > 1 {
        return Err(ProxyError::Authentication(
            "two different credentials were sent (Authorization and x-api-key); send one token, in either header"
                .into(),
        ));
    }
    let log = req.extensions().get::<RequestLog>();
    let caller = crate::auth::authenticate(&state.tokens, state.jwt.as_ref(), &presented, log).await?;
    if let Some(log) = log {
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
