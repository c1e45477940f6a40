//! Entry point: read the configuration, build the clients once, and serve the one router
//! under Lambda's streaming runtime or as a local HTTP server.

use bedrock_anthropic_proxy::config::{self, Config};
use bedrock_anthropic_proxy::{app, telemetry, AppState};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    // One thread unless asked for more. Lambda hands an instance one request at a time; and
    // locally one thread spends ~15-25% less CPU per streamed request than two, because each
    // Bedrock event hops between the upstream connection's task and the caller's, which on a
    // multi-thread runtime means cross-thread wake-ups (BENCHMARKS.md, "Threads"). One thread
    // streams a few thousand answers a second; WORKER_THREADS=0 uses every core.
    let workers = if in_lambda { 1 } else { config::worker_threads()? };
    let mut runtime = match workers {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if workers > 1 {
        runtime.worker_threads(workers);
    }
    runtime.enable_all().build()?.block_on(run(in_lambda))
}

async fn run(in_lambda: bool) -> Result<(), BoxError> {
    telemetry::init(in_lambda);
    let config = Config::from_env().inspect_err(|e| tracing::error!("{e}"))?;
    let state = AppState::from_config(config).await?;
    let router = app(state.clone());

    if state.config.in_lambda {
        // Each request line becomes a CloudWatch metrics record (EMF); locally they stay text.
        bedrock_anthropic_proxy::usage::request_log::emit_metrics(&state.config.metrics_namespace);
        // A charge whose caller left mid-stream is written by a task; the environment may be
        // frozen before it runs, so the next invocation waits for it first (usage/charge.rs).
        let router = router.layer(axum::middleware::from_fn(
            bedrock_anthropic_proxy::usage::charge::flush_first,
        ));
        return lambda_http::run_with_streaming_response(router).await;
    }
    let listener = tokio::net::TcpListener::bind(state.config.listen_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    bedrock_anthropic_proxy::http::serve::serve(listener, router, shutdown_signal()).await?;
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
