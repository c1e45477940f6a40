//! Local mode's HTTP server: the router on hyper's HTTP/1.1, one task per connection, and a
//! graceful shutdown (stop accepting, let open requests finish).
//!
//! Not `axum::serve`, only because it has no way to set hyper's buffer limit: a connection
//! keeps its read buffer for as long as it lives, and hyper grows that buffer to fit the
//! largest read. A 50 KB Claude Code request would leave a 64 KB buffer held for the whole
//! answer on every streaming connection; at [`MAX_BUF_BYTES`] it is at most 16 KiB.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// hyper's read (and write) buffer limit per connection. Bodies are read in pieces of at most
/// this size, and a request's line and headers must fit in it: the router refuses headers over
/// `routes::MAX_HEADER_BYTES` (12 KiB) with an Anthropic-shaped 431 first. Claude Code and the
/// SDKs send a few KiB.
pub const MAX_BUF_BYTES: usize = 16 * 1024;

/// Serves `router` on `listener` until `shutdown` resolves, then waits for open connections.
pub async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: the listener itself is fine, so
                    // wait a moment rather than spin or stop serving.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // SSE frames are small; without TCP_NODELAY, Nagle's algorithm would hold each one back
        // until the previous is acknowledged.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .max_buf_size(MAX_BUF_BYTES)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

// The router's 431 must come before hyper's: headers at its limit, plus a long request line.
const _: () = assert!(crate::http::MAX_HEADER_BYTES + 2048 <= MAX_BUF_BYTES);
