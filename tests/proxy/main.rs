//! The proxy's router against the Bedrock emulator, through the real aws-sdk-bedrockruntime
//! client: request rewriting, SSE framing and timing, errors, auth, retries, count_tokens,
//! models, pings and cancellation.

mod auth;
#[path = "../common/mod.rs"]
mod common;
mod endpoints;
mod messages;
mod reliability;
mod security;
mod streaming;

use std::time::{Duration, Instant};

use axum::body::Body;
use common::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

fn last_request(h: &Harness) -> Value {
    h.emulator.requests().pop().expect("the emulator received a request")
}
