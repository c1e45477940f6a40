//! Logging setup: JSON lines inside Lambda (for CloudWatch Logs Insights), readable text
//! locally, both filtered by `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(in_lambda: bool) {
    // The SDK's own crates are chatty at info; keep them at warn unless asked.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,aws_sdk_bedrockruntime=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if in_lambda {
        // Lambda adds its own timestamps and request ids around each line.
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .without_time()
            .init();
    } else {
        builder.with_ansi(false).init();
    }
}
