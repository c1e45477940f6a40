//! Shared helpers for the integration tests: spawn the Bedrock emulator, build the proxy's
//! router against it, send requests in-process, and read SSE.

#![allow(dead_code)]

pub mod idp;
pub mod logs;
pub mod moto;

#[allow(unused_imports, reason = "not every test binary captures logs")]
pub use logs::Logs;

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_sdk_bedrockruntime::config::Credentials;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use bedrock_anthropic_proxy::{app, config::Config, AppState};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The token every test harness accepts.
pub const TOKEN: &str = "test-token-0123456789";

/// The emulator plus a proxy router that talks to it.
pub struct Harness {
    pub emulator: bedrock_emulator::Emulator,
    pub app: Router,
    pub state: Arc<AppState>,
}

/// AWS configuration pointing every service at `endpoint`, with dummy credentials (the
/// emulator checks that requests are signed, not by whom).
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "tests"))
        .load()
        .await
}

/// A harness with `BEARER_TOKEN=TOKEN`, `INFERENCE_PROFILE=us`, fast retries, plus `env`.
pub async fn harness(env: &[(&str, &str)]) -> Harness {
    let emulator = bedrock_emulator::spawn().await.expect("emulator starts");
    let sdk = sdk_config(&emulator.url()).await;
    harness_with(emulator, &sdk, env).await
}

/// Like [`harness`], with the AWS configuration given (e.g. credentials that fail to load).
pub async fn harness_with(
    emulator: bedrock_emulator::Emulator,
    sdk: &aws_config::SdkConfig,
    env: &[(&str, &str)],
) -> Harness {
    logs::ask_every_time();
    let mut vars: HashMap<String, String> = [
        ("BEARER_TOKEN", TOKEN),
        ("INFERENCE_PROFILE", "us"),
        ("UPSTREAM_RETRY_BASE_MS", "5"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in env {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_vars(&vars).expect("config");
    let state = AppState::new(config, sdk).await.expect("state");
    Harness {
        app: app(state.clone()),
        state,
        emulator,
    }
}

/// A response read to the end.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the Anthropic error shape and returns `error.type`.
    pub fn error_type(&self) -> String {
        let v = self.json();
        assert_eq!(v["type"], "error", "{v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        v["error"]["type"].as_str().unwrap().to_string()
    }
}

/// A request builder with the token in `Authorization: Bearer`.
pub fn request(method: &str, uri: &str, body: Option<&Value>) -> axum::http::request::Builder {
    let builder = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("anthropic-version", "2023-06-01");
    match body {
        Some(_) => builder.header("content-type", "application/json"),
        None => builder,
    }
}

/// Sends a request in-process and reads the whole response.
pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let response = app.clone().oneshot(req).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("body").to_bytes().to_vec();
    Reply { status, headers, body }
}

/// POSTs `body` as JSON with the token.
pub async fn post(app: &Router, uri: &str, body: &Value) -> Reply {
    let req = request("POST", uri, Some(body))
        .body(Body::from(body.to_string()))
        .unwrap();
    send(app, req).await
}

/// A minimal message request whose prompt carries emulator directives.
pub fn message(prompt: &str, stream: bool) -> Value {
    serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}]
    })
}

/// Splits an SSE body into (event name, data JSON), failing the test on any framing error
/// (the rules are `bedrock_anthropic_proxy::sse::parse_frames`'s).
pub fn parse_sse(text: &str) -> Vec<(String, Value)> {
    bedrock_anthropic_proxy::sse::parse_frames(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// A Lambda invocation context whose deadline is `in_` from now, as lambda_http puts it in
/// each request's extensions (`lambda-runtime-deadline-ms`, ms since the epoch).
pub fn lambda_context(in_: std::time::Duration) -> lambda_http::Context {
    let deadline = std::time::SystemTime::now() + in_;
    let mut context = lambda_http::Context::default();
    context.deadline = deadline
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    context
}
