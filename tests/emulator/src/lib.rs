//! A Bedrock Runtime emulator for tests: InvokeModel, InvokeModelWithResponseStream and
//! CountTokens for Claude, on the wire exactly as the AWS SDK expects them (rest-json
//! errors, event-stream frames), with test directives in the prompt (see [`scenario`])
//! and `/_emulator/*` routes to inspect what arrived.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let emulator = bedrock_emulator::spawn().await?;
//! // AWS_ENDPOINT_URL_BEDROCK_RUNTIME=<emulator.url()> for the proxy under test
//! println!("{}", emulator.url());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod answer;
pub mod captures;
pub mod error;
pub mod frames;
pub mod ids;
pub mod routes;
pub mod scenario;
pub mod state;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::state::State;

/// A running emulator. The server stops when the handle is dropped, so keep it alive
/// for as long as the test needs it.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Emulator {
    /// The base URL, e.g. `http://127.0.0.1:41234`, for `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The logged Bedrock requests, oldest first (as `GET /_emulator/requests`).
    pub fn requests(&self) -> Vec<Value> {
        self.state.requests()
    }

    /// The stream statistics (as `GET /_emulator/stats`).
    pub fn stats(&self) -> Value {
        self.state.stats()
    }

    /// Forgets the log, `fail_first` counters and counts (as `DELETE /_emulator/requests`).
    pub fn clear(&self) {
        self.state.clear();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `127.0.0.1:0` and serves in a background task. Fails if the captured requests
/// the validation rules are learned from cannot be read.
pub async fn spawn() -> std::io::Result<Emulator> {
    // Learn the rules now, so a broken capture fails the test that starts the emulator
    // rather than every request with a 500.
    validate::rules().map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(State::default());
    let task = tokio::spawn(serve_with(listener, state.clone()));
    Ok(Emulator { addr, state, task })
}

/// Serves on `listener` until the task is dropped. Returns at once, with a message on
/// stderr, if the captured requests the validation rules are learned from cannot be read.
pub async fn serve(listener: TcpListener) {
    if let Err(error) = validate::rules() {
        eprintln!("bedrock-emulator: cannot learn Bedrock's rules: {error}");
        return;
    }
    serve_with(listener, Arc::new(State::default())).await;
}

async fn serve_with(listener: TcpListener, state: Arc<State>) {
    // Frames are small; without TCP_NODELAY, Nagle's algorithm would hold one back
    // until the previous is acknowledged and blur per-chunk timing.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    // axum retries failed accepts itself, so this only returns if the runtime stops.
    if let Err(error) = axum::serve(listener, routes::app(state)).await {
        eprintln!("bedrock-emulator: server stopped: {error}");
    }
}
