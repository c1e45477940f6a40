//! How hard to try: attempts with jittered exponential backoff, timeouts per attempt, and the
//! Lambda invocation's deadline over all of them. Both upstreams retry through here.

use std::future::Future;
use std::time::Duration;

use crate::error::ProxyError;
use crate::upstream::deadline::Deadline;

/// How hard to try.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts, including the first.
    pub max_attempts: u32,
    /// Base of the exponential backoff.
    pub base_delay: Duration,
    /// Time allowed for one attempt to produce its response (or first stream event).
    pub timeout: Duration,
    /// Inside Lambda, when the request's answer must be done (see [`Bedrock::for_request`]); it
    /// replaces `timeout` for whole answers and caps every wait and retry.
    pub deadline: Option<Deadline>,
    /// The request whose log line counts the throttled attempts (set per request).
    pub log: Option<crate::usage::request_log::RequestLog>,
}

impl RetryPolicy {
    /// This policy for one request: its deadline, and its log line for throttle counts.
    pub fn for_request(&self, deadline: Option<Deadline>, log: &crate::usage::request_log::RequestLog) -> Self {
        Self {
            deadline,
            log: Some(log.clone()),
            ..self.clone()
        }
    }

    /// Bounds one attempt at a whole answer: by `timeout` locally; inside Lambda by the time
    /// left before the deadline instead, because a long answer may legitimately take minutes,
    /// and cutting it at a fixed time would only throw away an answer Bedrock bills anyway.
    pub async fn timed<F: Future>(&self, call: F) -> Result<F::Output, ProxyError> {
        match self.deadline {
            None => self.within_timeout(call).await,
            Some(deadline) => tokio::time::timeout_at(deadline.at, call)
                .await
                .map_err(|_| deadline_passed(deadline)),
        }
    }

    /// Bounds the wait for a stream's response headers: by `timeout`, and inside Lambda also
    /// by the deadline. Headers come at once from a healthy Bedrock, so a long wait means a
    /// hung connection, not a long answer.
    pub async fn timed_stream_start<F: Future>(&self, call: F) -> Result<F::Output, ProxyError> {
        match self.deadline {
            Some(deadline) if deadline.remaining() < self.timeout => tokio::time::timeout_at(deadline.at, call)
                .await
                .map_err(|_| deadline_passed(deadline)),
            _ => self.within_timeout(call).await,
        }
    }

    async fn within_timeout<F: Future>(&self, call: F) -> Result<F::Output, ProxyError> {
        tokio::time::timeout(self.timeout, call).await.map_err(|_| {
            ProxyError::Timeout(format!(
                "bedrock did not answer within {} s (UPSTREAM_TIMEOUT_SECONDS)",
                self.timeout.as_secs()
            ))
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or runs out of attempts. Only called
    /// before anything has been sent to the caller, so retrying is always safe. Both upstreams
    /// (InvokeModel and Mantle) retry through here, so they behave alike.
    pub async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<T, ProxyError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProxyError>>,
    {
        let mut n = 1;
        loop {
            let result = attempt().await;
            if let (Err(ProxyError::RateLimited(_)), Some(log)) = (&result, &self.log) {
                log.throttled();
            }
            match result {
                Err(e) if e.is_retryable() && n < self.max_attempts => {
                    let delay = backoff(self.base_delay, n);
                    // An attempt that could only start after the deadline would be cut at once;
                    // the caller learns more from the error that stopped us.
                    if self.deadline.is_some_and(|d| d.remaining() <= delay) {
                        return Err(e);
                    }
                    tracing::debug!(attempt = n, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), error = %e, "retrying bedrock call");
                    tokio::time::sleep(delay).await;
                    n += 1;
                }
                other => return other,
            }
        }
    }
}

/// The error of a call the Lambda deadline cut short.
fn deadline_passed(deadline: Deadline) -> ProxyError {
    ProxyError::DeadlineExceeded(format!(
        "the answer was not finished {} s before this Lambda invocation's timeout, so the proxy gave up on it; \
         raise the function's timeout (at most 900 s), stream the answer, or ask for fewer max_tokens",
        deadline.margin.as_secs_f64()
    ))
}

/// Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries
/// from many callers spread out but never collapse to zero.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
    let capped = exp.min(Duration::from_secs(10));
    let half = capped / 2;
    let mut buf = [0u8; 8];
    let random = getrandom::fill(&mut buf).map(|_| u64::from_le_bytes(buf)).unwrap_or(0);
    let jitter_ns = match u64::try_from(half.as_nanos()).unwrap_or(u64::MAX) {
        0 => 0,
        span => random % span,
    };
    half + Duration::from_nanos(jitter_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_jittered_within_bounds() {
        let base = Duration::from_millis(100);
        for attempt in 1..6 {
            let full = base * (1 << (attempt - 1));
            let d = backoff(base, attempt);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(base, 40) <= Duration::from_secs(10));
    }
}
