//! Entry point: read the configuration, build the clients once, and serve the one router
//! under Lambda's streaming runtime or as a local HTTP server.

use axum::serve::ListenerExt;
use bedrock_anthropic_proxy::{app, config::Config, telemetry, AppState};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    // Lambda hands an instance one request at a time, so worker threads would only add start-up
    // time and cross-thread wake-ups; locally, requests are concurrent and get every core.
    let runtime = if in_lambda {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()?;
    runtime.block_on(run(in_lambda))
}

async fn run(in_lambda: bool) -> Result<(), BoxError> {
    telemetry::init(in_lambda);
    let config = Config::from_env().inspect_err(|e| tracing::error!("{e}"))?;
    let state = AppState::from_config(config).await?;
    let router = app(state.clone());

    if state.config.in_lambda {
        // Each request line becomes a CloudWatch metrics record (EMF); locally they stay text.
        bedrock_anthropic_proxy::request_log::emit_metrics(&state.config.metrics_namespace);
        return lambda_http::run_with_streaming_response(router).await;
    }
    let listener = tokio::net::TcpListener::bind(state.config.listen_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    // SSE frames are small; without TCP_NODELAY, Nagle's algorithm would hold each one back
    // until the previous is acknowledged.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// Ctrl-C or SIGTERM: stop accepting, let open requests finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
