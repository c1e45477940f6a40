//! An Amazon Bedrock emulator for tests, on one port:
//! - Bedrock Runtime's InvokeModel, InvokeModelWithResponseStream and CountTokens for
//!   Claude, on the wire exactly as the AWS SDK expects them (rest-json errors,
//!   event-stream frames);
//! - Bedrock's Anthropic Messages endpoint ("Mantle"): `/anthropic/v1/messages` (JSON or
//!   Anthropic SSE) and `/anthropic/v1/messages/count_tokens`, SigV4-signed for
//!   `bedrock-mantle`, with Anthropic-shaped errors (see [`mantle`]);
//! - Bedrock Guardrails on InvokeModel: the guardrail headers, test guardrails that intervene,
//!   Bedrock's refusal of unknown ones (see [`guardrail`]);
//!
//! with test directives in the prompt (see [`scenario`]) and `/_emulator/*` routes to
//! inspect what arrived.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let emulator = bedrock_emulator::spawn().await?;
//! // AWS_ENDPOINT_URL_BEDROCK_RUNTIME=<emulator.url()> and
//! // AWS_ENDPOINT_URL_BEDROCK_MANTLE=<emulator.url()> for the proxy under test
//! println!("{}", emulator.url());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod answer;
pub mod anthropic_error;
pub mod captures;
pub mod error;
pub mod frames;
pub mod guardrail;
pub mod ids;
pub mod mantle;
pub mod routes;
pub mod scenario;
pub mod sse;
pub mod state;
pub mod stream;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower_service::Service;

use crate::routes::ConnectionCloser;
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
    /// The base URL, e.g. `http://127.0.0.1:41234`, for `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`
    /// and `AWS_ENDPOINT_URL_BEDROCK_MANTLE` alike.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The logged Runtime and Mantle requests, oldest first (as `GET /_emulator/requests`).
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

/// Learns what Runtime and Mantle accept from the captured requests, once per process.
/// Called before serving, so a broken capture fails the test or process that starts the
/// emulator rather than every request with a 500.
pub fn learn_rules() -> Result<(), String> {
    validate::rules()?;
    mantle::rules()?;
    Ok(())
}

/// Binds `127.0.0.1:0` and serves in a background task. Fails if the captured requests
/// the validation rules are learned from cannot be read.
pub async fn spawn() -> std::io::Result<Emulator> {
    learn_rules().map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(State::default());
    let task = tokio::spawn(serve_with(listener, state.clone()));
    Ok(Emulator { addr, state, task })
}

/// Serves on `listener` until the task is dropped. Returns at once, with a message on
/// stderr, if the captured requests the validation rules are learned from cannot be read.
pub async fn serve(listener: TcpListener) {
    if let Err(error) = learn_rules() {
        eprintln!("bedrock-emulator: cannot learn Bedrock's rules: {error}");
        return;
    }
    serve_with(listener, Arc::new(State::default())).await;
}

/// The accept loop. axum::serve would do, except that a handler cannot make it drop a
/// connection without answering; `emulator:close` needs exactly that.
async fn serve_with(listener: TcpListener, state: Arc<State>) {
    let app = routes::app(state);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                accept_failed(error).await;
                continue;
            }
        };
        // Frames are small; without TCP_NODELAY, Nagle's algorithm would hold one back
        // until the previous is acknowledged and blur per-chunk timing.
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, app.clone()));
    }
}

/// As axum::serve does: a client that gave up before `accept` is nobody's problem; other
/// errors (out of file descriptors) get a pause so the loop does not spin.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    eprintln!("bedrock-emulator: accept failed: {error}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one HTTP/1.1 connection until the client leaves, or until a handler fires the
/// connection's [`ConnectionCloser`]: then the connection future is dropped with the
/// socket, so the client sees the connection end without a single response byte, like
/// a pooled keep-alive connection that the far end closed.
async fn serve_connection(stream: TcpStream, app: Router) {
    let closer = ConnectionCloser::default();
    let service = {
        let closer = closer.clone();
        service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(closer.clone());
            // The router is always ready (axum's `poll_ready` is `Ready`), so call at once.
            app.clone().call(request)
        })
    };
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        // An error here is a client that left mid-exchange or a deliberate `cut_after`:
        // the connection is over either way.
        _ = connection => {}
        () = closer.closed() => {}
    }
}
