//! bedrock-anthropic-proxy: the Anthropic Messages API in front of Claude on Amazon Bedrock,
//! served as a streaming AWS Lambda (Function URL, RESPONSE_STREAM) or as a local HTTP server.
//!
//! A request's walk, folder by folder: [`http`] (router, layers, handlers) → [`auth`] (who is
//! calling, and their policy) → [`translate`] (the Anthropic body as Bedrock takes it) →
//! [`upstream`] (InvokeModel or Mantle, retries, failover) → [`sse`] (the answer re-framed as
//! Anthropic server-sent events) → [`usage`] (log line, metrics, budgets).
//!
//! `main` reads the [`config::Config`], builds an [`AppState`] once, and hands [`app`] to
//! whichever transport it runs under.

// Token counts, byte sizes and durations meet in arithmetic here; an `as` cast that silently
// truncates would undercount a budget or a deadline. Say what is meant instead.
#![warn(clippy::cast_possible_truncation)]

pub mod auth;
pub mod config;
pub mod error;
pub mod http;
pub mod sse;
pub mod state;
mod sync;
pub mod telemetry;
pub mod translate;
pub mod upstream;
pub mod usage;

pub use http::app;
pub use state::{load_sdk_config, AppState};
