//! The token store and the `rotate-token` steps against moto's Secrets Manager: cold start,
//! console edits, periodic and on-miss re-reads, a flood of bad tokens, named callers in the
//! logs, Secrets Manager going away (after start and before it), and full rotations.
//!
//! `MOTO_ENDPOINT` (e.g. `http://127.0.0.1:5000`) points at a running `moto_server`; without
//! it, one is started from `.venv/bin/moto_server` for this test binary and stopped with it.

#[path = "../common/mod.rs"]
mod common;
mod forwarder;
mod outages;
mod refresh;
mod rotation;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::types::RotationRulesType;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use bedrock_anthropic_proxy::{app, config::Config, AppState};
use common::moto::{moto, unique};
use common::{sdk_config, Logs};
use forwarder::*;
use http_body_util::BodyExt;
use rotate_token::{RotationError, RotationEvent, Rotator, Step};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// A Secrets Manager client talking to moto directly (for setting up and inspecting secrets).
async fn secrets() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&sdk_config(moto()).await)
}

/// A fresh token as the proxy would generate it.
fn token() -> String {
    bedrock_anthropic_proxy::auth::tokens::generate_token().expect("OS random source")
}

/// A ClientRequestToken shaped like the UUIDs Secrets Manager sends.
fn version_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("OS random source");
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

async fn create_secret(sm: &aws_sdk_secretsmanager::Client, name: &str, value: &str) {
    sm.create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("CreateSecret");
}

/// What a console edit does: a new version that becomes AWSCURRENT.
async fn put_value(sm: &aws_sdk_secretsmanager::Client, name: &str, value: &str) {
    sm.put_secret_value()
        .secret_id(name)
        .secret_string(value)
        .send()
        .await
        .expect("PutSecretValue");
}

/// A proxy reading `secret` through `endpoint`, with `env` on top of the secret id.
async fn proxy(endpoint: &str, secret: &str, env: &[(&str, &str)]) -> (Router, Arc<AppState>) {
    common::logs::ask_every_time();
    let mut vars: HashMap<String, String> = HashMap::from([("BEARER_TOKEN_SECRET_ID".into(), secret.into())]);
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_vars(&vars).expect("config");
    let state = AppState::new(config, &sdk_config(endpoint).await).await.expect("state");
    (app(state.clone()), state)
}

#[derive(Clone, Copy, Debug)]
enum Via {
    Bearer,
    ApiKey,
}

struct Reply {
    status: StatusCode,
    body: Value,
}

impl Reply {
    fn error_type(&self) -> &str {
        self.body["error"]["type"].as_str().unwrap_or_default()
    }

    fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
}

/// `GET /v1/models` (authenticated, never touches Bedrock) with `token`.
async fn models(app: &Router, token: &str, via: Via) -> Reply {
    let req = Request::get("/v1/models");
    let req = match via {
        Via::Bearer => req.header("authorization", format!("Bearer {token}")),
        Via::ApiKey => req.header("x-api-key", token),
    };
    let response = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, body }
}

async fn status(app: &Router, token: &str) -> StatusCode {
    models(app, token, Via::Bearer).await.status
}

/// Polls until `token` is accepted, returning how long that took, or None after `limit`.
async fn accepted_within(app: &Router, token: &str, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if status(app, token).await == StatusCode::OK {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
