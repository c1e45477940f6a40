//! Logging setup: JSON lines inside Lambda (for CloudWatch Logs Insights), readable text
//! locally, both filtered by `RUST_LOG`.

use tracing::Level;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Crates that may log request or response bodies at debug and trace (the AWS SDK logs
/// prompts, and new tokens in the rotation function, there): never below warn, whatever
/// `RUST_LOG` says.
const BODY_LOGGING_CRATES: &[&str] = &[
    "aws_smithy",
    "aws_sdk_",
    "aws_config",
    "aws_sigv4",
    "hyper",
    "h2",
    "rustls",
];

/// False for events of [`BODY_LOGGING_CRATES`] below warn.
fn allowed(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() <= Level::WARN || !BODY_LOGGING_CRATES.iter().any(|c| meta.target().starts_with(c))
}

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(in_lambda: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if in_lambda {
        // Lambda adds its own timestamps and request ids around each line.
        fmt.json()
            .flatten_event(true)
            .with_current_span(false)
            .without_time()
            .boxed()
    } else {
        fmt.with_ansi(false).boxed()
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter).with_filter(filter_fn(allowed)))
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_crates_never_log_below_warn_whatever_rust_log_says() {
        use tracing::callsite::Identifier;
        struct Site;
        impl tracing::Callsite for Site {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &tracing::Metadata<'_> {
                unreachable!()
            }
        }
        static SITE: Site = Site;
        let meta = |target: &'static str, level| {
            tracing::Metadata::new(
                "e",
                target,
                level,
                None,
                None,
                None,
                tracing::field::FieldSet::new(&[], Identifier(&SITE)),
                tracing::metadata::Kind::EVENT,
            )
        };
        assert!(!allowed(&meta("aws_smithy_runtime::client::http", Level::TRACE)));
        assert!(!allowed(&meta("aws_sdk_secretsmanager::operation", Level::DEBUG)));
        assert!(!allowed(&meta("hyper::proto", Level::DEBUG)));
        assert!(allowed(&meta("aws_smithy_runtime", Level::WARN)));
        assert!(allowed(&meta("bedrock_anthropic_proxy::http", Level::TRACE)));
    }
}
