//! `GET /v1/models` and `GET /v1/models/{id}`: the catalogue in Anthropic's list shape,
//! filtered by the caller's policy.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::error::ProxyError;
use crate::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct ListParams {
    limit: Option<usize>,
    after_id: Option<String>,
    before_id: Option<String>,
}

/// `GET /v1/models`, in Anthropic's list shape with `limit`/`after_id`/`before_id` paging.
pub(crate) async fn list_models(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<ListParams>,
) -> Result<Response, ProxyError> {
    // Only what this caller may use.
    let mut all = crate::translate::models::catalog(state.upstream.models().map());
    all.retain(|m| {
        let resolved = state.upstream.models().resolve(&m.id).unwrap_or_default();
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

/// `GET /v1/models/{id}`: a model the caller's policy does not allow is not found, as it is
/// missing from the caller's list.
pub(crate) async fn get_model(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ProxyError> {
    let not_found = || ProxyError::NotFound(format!("model {id:?} not found"));
    let entry = crate::translate::models::catalog_entry(&id, state.upstream.models()).ok_or_else(not_found)?;
    let resolved = state.upstream.models().resolve(&entry.id).unwrap_or_default();
    if !caller.policy.allows_model(&entry.id, &resolved) {
        return Err(not_found());
    }
    Ok(Json(entry).into_response())
}
