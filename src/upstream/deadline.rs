//! The Lambda invocation's deadline, the one limit that always holds inside Lambda.
//!
//! A Function URL in RESPONSE_STREAM mode does not stop a function whose caller has hung up
//! (AWS: "streamed responses are not interrupted or stopped when the invoking client
//! connection is broken"), so the deadline is what finally ends an answer nobody reads. Ending
//! it ourselves, a margin before Lambda would, lets the caller (`event: error`) and the log
//! line say why, where Lambda's own cut-off would leave a stream broken off mid-frame.

use std::time::{Duration, SystemTime};

use lambda_http::RequestExt;
use tokio::time::Instant;

/// A real deadline is at most 15 minutes away (Lambda's longest timeout). `cargo lambda watch`
/// sends the timeout itself (600000) where the Runtime API documents "the date that the
/// function times out in Unix time milliseconds"; a value this far from now is no deadline.
const PLAUSIBLE: Duration = Duration::from_secs(24 * 3600);

/// When the proxy gives up on an answer: the invocation's deadline less a margin.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// The moment the proxy stops waiting for Bedrock.
    pub at: Instant,
    /// How long before Lambda's own cut-off that is (`LAMBDA_DEADLINE_MARGIN_MS`).
    pub margin: Duration,
}

impl Deadline {
    /// The deadline of the invocation carrying this request: lambda_http puts the invocation's
    /// `Context` in each request's extensions. `None` outside Lambda, and for a context whose
    /// deadline is no Unix time (0, what `Context::default()` holds, or a value days away).
    pub fn of_invocation(extensions: &axum::http::Extensions, margin: Duration) -> Option<Self> {
        let context = extensions.lambda_context_ref()?;
        let at = context.deadline();
        let distance = match at.duration_since(SystemTime::now()) {
            Ok(ahead) => ahead,
            Err(behind) => behind.duration(),
        };
        if distance > PLAUSIBLE {
            tracing::debug!(
                deadline_ms = context.deadline,
                "the invocation's deadline is no Unix time; ignored"
            );
            return None;
        }
        let deadline = Self::at_wall_clock(at, margin);
        tracing::debug!(
            deadline_ms = context.deadline,
            remaining_ms = u64::try_from(deadline.remaining().as_millis()).unwrap_or(u64::MAX),
            "invocation deadline"
        );
        Some(deadline)
    }

    /// `margin` before the wall-clock time `deadline` (Lambda gives it in ms since the epoch),
    /// on the monotonic clock the timers use.
    pub fn at_wall_clock(deadline: SystemTime, margin: Duration) -> Self {
        let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
        Self {
            at: Instant::now() + left.saturating_sub(margin),
            margin,
        }
    }

    /// Time left until the proxy gives up.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_comes_from_the_lambda_context_less_the_margin() {
        let mut context = lambda_http::Context::default();
        let mut extensions = axum::http::Extensions::new();
        assert!(Deadline::of_invocation(&extensions, Duration::from_secs(3)).is_none());
        extensions.insert(context.clone());
        assert!(
            Deadline::of_invocation(&extensions, Duration::from_secs(3)).is_none(),
            "a context without a deadline sets none"
        );
        // What `cargo lambda watch` sends: the timeout, not a time.
        context.deadline = 600_000;
        extensions.insert(context.clone());
        assert!(Deadline::of_invocation(&extensions, Duration::from_secs(3)).is_none());
        let in_60_s = SystemTime::now() + Duration::from_secs(60);
        context.deadline = in_60_s
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            .try_into()
            .unwrap();
        extensions.insert(context);
        let deadline = Deadline::of_invocation(&extensions, Duration::from_secs(3)).unwrap();
        let left = deadline.remaining();
        assert!(
            left > Duration::from_secs(55) && left <= Duration::from_secs(57),
            "{left:?}"
        );
    }

    #[test]
    fn a_deadline_already_past_leaves_no_time() {
        let deadline = Deadline::at_wall_clock(SystemTime::now() - Duration::from_secs(5), Duration::from_secs(3));
        assert_eq!(deadline.remaining(), Duration::ZERO);
    }
}
