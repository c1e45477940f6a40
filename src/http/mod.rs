//! The one router both transports serve: the routes, the layers every request passes through
//! ([`layers`]), and a handler module per endpoint. Handlers hand a request to the
//! [`crate::upstream::Upstream`] and get an answer back; they never know which Bedrock API ran.

mod body;
mod count_tokens;
pub(crate) mod layers;
mod messages;
mod models;
pub(crate) mod request_id;
pub mod serve;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::ProxyError;
use crate::AppState;

pub use layers::{with_layers, MAX_HEADER_BYTES, REQUEST_ID_HEADER};

/// Builds the router. Tests call it directly with `tower::ServiceExt::oneshot`.
pub fn app(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        // The original project's usage: a POST to the Function URL's root is a Messages call.
        .route("/", post(messages::messages))
        .route("/v1/messages", post(messages::messages))
        .route("/v1/messages/count_tokens", post(count_tokens::count_tokens))
        .route("/v1/models", get(models::list_models))
        .route("/v1/models/{id}", get(models::get_model))
        .route("/health", get(health));
    with_layers(routes, state)
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
