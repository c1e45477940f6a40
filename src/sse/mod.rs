//! Bedrock stream chunks → Anthropic server-sent events: `event: <type>\ndata: <json>\n\n`,
//! one frame per chunk, sent as it arrives (events that arrived together share one write); keep-alive pings on silence; `event: error`
//! when the stream fails after it has begun, or when the Lambda deadline comes near; token
//! counts as they go ([`meter`]); Bedrock's own keys removed (`translate::answer`), and the
//! blocks of a guardrail's intervention put back in Anthropic's order ([`blocks`]); the
//! request's charge settled before the last frame leaves.

pub mod blocks;
pub mod meter;

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use tokio::time::{Instant, Sleep};

use crate::error::ProxyError;
use crate::translate::answer::{strip_event, BEDROCK_PREFIX, GUARDRAIL_INTERVENED};
use crate::upstream::deadline::Deadline;
use crate::upstream::{EventStream, StartedStream, StreamItem};
use crate::usage::charge;
use crate::usage::request_log::{RequestLog, Usage};
use blocks::{BlockEvent, Blocks};

/// The keep-alive frame, byte for byte what Anthropic sends.
pub const PING_FRAME: &[u8] = b"event: ping\ndata: {\"type\": \"ping\"}\n\n";

/// Events already waiting are sent together, up to this many bytes per chunk.
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Splits a body of server-sent events into `(event name, data)` pairs, checking the framing
/// this proxy promises: UTF-8, and every frame exactly `event: <name>\ndata: <json>\n\n` with
/// the name equal to `data.type`. The one checker for the tests, the fuzz target and the bench
/// (which reads frames as they arrive, with [`frame_len`] and [`parse_frame`]).
pub fn parse_frames(body: &[u8]) -> Result<Vec<(String, serde_json::Value)>, String> {
    let mut frames = Vec::new();
    let mut rest = body;
    while let Some(len) = frame_len(rest) {
        frames.push(parse_frame(&rest[..len])?);
        rest = &rest[len..];
    }
    if !rest.is_empty() || body.is_empty() {
        return Err(format!(
            "SSE body must end with a blank line: {:?}",
            String::from_utf8_lossy(rest)
        ));
    }
    Ok(frames)
}

/// The length of the first complete frame at the start of `buf`, through its blank line.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\n\n").map(|end| end + 2)
}

/// Checks one frame (as [`frame_len`] cut it) and returns its event name and data.
pub fn parse_frame(frame: &[u8]) -> Result<(String, serde_json::Value), String> {
    let text = std::str::from_utf8(frame).map_err(|e| format!("SSE frame is not UTF-8: {e}"))?;
    let frame = text
        .strip_suffix("\n\n")
        .ok_or_else(|| format!("SSE frame must end with a blank line: {text:?}"))?;
    let mut lines = frame.split('\n');
    let event = lines
        .next()
        .and_then(|l| l.strip_prefix("event: "))
        .ok_or_else(|| format!("no event line in {frame:?}"))?;
    let data = lines
        .next()
        .and_then(|l| l.strip_prefix("data: "))
        .ok_or_else(|| format!("no data line in {frame:?}"))?;
    if lines.next().is_some() {
        return Err(format!("extra lines in {frame:?}"));
    }
    let value: serde_json::Value = serde_json::from_str(data).map_err(|e| format!("data is not JSON ({e}): {data}"))?;
    if value["type"].as_str() != Some(event) {
        return Err(format!("event name {event:?} must equal data.type in {frame:?}"));
    }
    Ok((event.to_string(), value))
}

/// What the proxy reads of every event: its type, and what it does to the content blocks.
/// serde walks the whole event to find the type either way, so the extra fields cost little;
/// they are read as any JSON, so that an odd value there never fails an event.
#[derive(Deserialize)]
struct EventHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: Option<serde_json::Value>,
    #[serde(default)]
    content_block: Option<serde_json::Value>,
}

impl EventHead<'_> {
    fn block_event(&self) -> BlockEvent {
        let index = self.index.as_ref().and_then(serde_json::Value::as_u64);
        match (self.kind.as_ref(), index) {
            ("content_block_start", Some(index)) => BlockEvent::Start {
                index,
                text: self.content_block.as_ref().and_then(|b| b.get("type")) == Some(&"text".into()),
            },
            ("content_block_delta", Some(index)) => BlockEvent::Delta { index },
            ("content_block_stop", Some(index)) => BlockEvent::Stop { index },
            ("message_delta", _) => BlockEvent::MessageDelta,
            _ => BlockEvent::Other,
        }
    }
}

/// One re-framed event.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    /// The complete SSE frame.
    pub bytes: Bytes,
    /// True for `message_stop`, the last event of a complete answer.
    pub is_stop: bool,
    /// True for `content_block_delta`, the event that carries tokens (the first one sets the time to
    /// first token).
    pub carries_tokens: bool,
    /// Token counts, when the event carried Bedrock's metrics.
    pub usage: Option<Usage>,
    /// The event said a Bedrock guardrail intervened.
    pub guardrail_intervened: bool,
    /// What the event does to the content blocks.
    pub block: BlockEvent,
    /// `message_start` or `message_delta`, the events that carry Anthropic's counts.
    pub counts_event: Option<&'static str>,
}

impl Frame {
    /// The event's JSON, as sent on the `data:` line.
    pub fn data(&self) -> &[u8] {
        let start = memchr::memmem::find(&self.bytes, b"\ndata: ").map_or(0, |at| at + 7);
        let end = self.bytes.len().saturating_sub(2).max(start);
        &self.bytes[start..end]
    }
}

/// Re-frames one Bedrock chunk payload (one Anthropic event as JSON) as an SSE frame.
///
/// The JSON is forwarded byte for byte, except an event carrying Bedrock's own keys
/// (`message_stop`'s metrics, a guardrail's action), which loses them, and JSON containing raw
/// line breaks, which is re-serialised so it fits on one `data:` line.
pub fn reframe(chunk: &[u8]) -> Result<Frame, ProxyError> {
    let garbled = |why: &str| ProxyError::Upstream(format!("bedrock sent an unreadable stream event: {why}"));
    // serde would also read a struct from a JSON array (`["message_stop"]`); events are objects.
    if chunk.trim_ascii_start().first() != Some(&b'{') {
        return Err(garbled("not a JSON object"));
    }
    let head: EventHead<'_> = serde_json::from_slice(chunk).map_err(|_| garbled("not a JSON event with a \"type\""))?;
    let block = head.block_event();
    let kind = head.kind;
    if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(garbled("bad event type"));
    }
    let is_stop = kind == "message_stop";
    let mut usage = None;
    let mut guardrail_intervened = false;
    let mut rewritten = None;
    // Bedrock puts its metrics and a guardrail's action on message_stop; look everywhere
    // anyway (a SIMD substring search costs nanoseconds), so they can never leak to a caller.
    let has_bedrock_keys = is_stop || memchr::memmem::find(chunk, BEDROCK_PREFIX.as_bytes()).is_some();
    if has_bedrock_keys || memchr::memchr2(b'\n', b'\r', chunk).is_some() {
        let mut value: serde_json::Value = serde_json::from_slice(chunk).map_err(|_| garbled("not JSON"))?;
        let removed = strip_event(&mut value);
        usage = removed.metrics.as_ref().map(Usage::from_bedrock_metrics);
        guardrail_intervened = removed.intervened;
        rewritten = Some(serde_json::to_vec(&value).map_err(|_| garbled("not JSON"))?);
    }
    let data = rewritten.as_deref().unwrap_or(chunk);
    let mut out = BytesMut::with_capacity(kind.len() + data.len() + 16);
    out.put_slice(b"event: ");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\ndata: ");
    out.put_slice(data);
    out.put_slice(b"\n\n");
    Ok(Frame {
        bytes: out.freeze(),
        is_stop,
        carries_tokens: kind == "content_block_delta",
        usage,
        guardrail_intervened,
        block,
        counts_event: match &*kind {
            "message_start" => Some("message_start"),
            "message_delta" => Some("message_delta"),
            _ => None,
        },
    })
}

/// Where one caller's SSE body is. Each poll acts on the state it finds, so the order of what
/// the caller sees is written down here rather than implied by a loop.
enum State {
    /// Nothing sent yet. A ping goes first when Bedrock was already silent for a whole interval
    /// before the body began; then the first event, read while the status was chosen.
    Waiting { ping_owed: bool, first: Option<StreamItem> },
    /// Forwarding Bedrock's events as they arrive, pinging after each silent interval.
    Streaming,
    /// The last frame is ready and waits for the request's charge to be written, so that the
    /// charge is in the table when the caller has read the last byte.
    Settling {
        last: Bytes,
        settle: Pin<Box<dyn Future<Output = ()> + Send>>,
    },
    /// The last frame went out (`message_stop`, or `event: error`); Bedrock's stream is dropped
    /// and never polled again, so an upstream that ended early cannot be polled after its end.
    Ended,
}

/// The caller's SSE body: Bedrock's events as they arrive, pings during silence, and one
/// `event: error` if the stream fails, Bedrock stays silent for `idle_timeout`, or the Lambda
/// deadline comes. Dropping it (the caller left, as far as the transport can tell) drops
/// Bedrock's stream, which closes its connection.
pub struct SseBody {
    state: State,
    /// `None` once the body has ended: dropping it at once closes Bedrock's connection.
    upstream: Option<EventStream>,
    ping_interval: Duration,
    /// Bedrock silent this long mid-stream counts as dead (`UPSTREAM_TIMEOUT_SECONDS`): pings
    /// alone must not keep a caller waiting forever on a hung upstream.
    idle_timeout: Duration,
    last_event: Instant,
    /// One timer for the whole stream, pushed back on every event, rather than a new timer per
    /// event.
    silence: Pin<Box<Sleep>>,
    /// Inside Lambda: the stream ends with `event: error` here, a margin before Lambda would
    /// cut it off (and with it the error event and the log line).
    deadline: Option<(Deadline, Pin<Box<Sleep>>)>,
    log: RequestLog,
    saw_stop: bool,
    /// The frame about to leave is the last (`message_stop`, or `event: error`).
    closing: bool,
    meter: meter::Meter,
    blocks: Blocks,
}

impl SseBody {
    pub fn new(
        started: StartedStream,
        ping_interval: Duration,
        idle_timeout: Duration,
        deadline: Option<Deadline>,
        log: RequestLog,
    ) -> Self {
        Self {
            state: State::Waiting {
                ping_owed: started.silent,
                first: started.first,
            },
            upstream: Some(started.rest),
            ping_interval,
            idle_timeout,
            last_event: Instant::now(),
            silence: Box::pin(tokio::time::sleep(ping_interval)),
            deadline: deadline.map(|d| (d, Box::pin(tokio::time::sleep_until(d.at)))),
            log,
            saw_stop: false,
            closing: false,
            meter: meter::Meter::default(),
            blocks: Blocks::default(),
        }
    }

    /// One item from Bedrock, and every further one already waiting, as one chunk for the
    /// caller; `None` for a clean end. Events that arrived together leave together: one write
    /// instead of one per event, the same bytes, and nothing is held back to wait for more.
    fn forward(&mut self, item: Option<StreamItem>, cx: &mut Context<'_>) -> Option<Bytes> {
        self.last_event = Instant::now();
        let next = self.last_event + self.ping_interval;
        self.silence.as_mut().reset(next);
        let first = self.frame(item)?;
        let mut batch = BytesMut::new();
        while batch.len() < MAX_BATCH_BYTES {
            // `None` once an event ended the body (message_stop then the end, or an error).
            let Some(upstream) = self.upstream.as_mut() else { break };
            let Poll::Ready(item) = upstream.poll_next_unpin(cx) else {
                break;
            };
            let Some(more) = self.frame(item) else { break };
            if batch.is_empty() {
                batch.extend_from_slice(&first);
            }
            batch.extend_from_slice(&more);
        }
        Some(if batch.is_empty() { first } else { batch.freeze() })
    }

    /// One item from Bedrock (or its end) → the frame for the caller, or `None` for a clean end.
    /// The frame may be empty: an event the block repair dropped.
    fn frame(&mut self, item: Option<StreamItem>) -> Option<Bytes> {
        match item {
            Some(Ok(chunk)) => match reframe(&chunk) {
                Ok(frame) => {
                    if let Some(usage) = frame.usage {
                        self.meter.metrics(usage);
                        self.log.usage(self.meter.reported());
                    }
                    if let Some(kind) = frame.counts_event {
                        self.meter.event(kind, &chunk);
                        self.log.usage(self.meter.reported());
                    }
                    if frame.guardrail_intervened {
                        self.log.outcome(GUARDRAIL_INTERVENED);
                    }
                    self.saw_stop |= frame.is_stop;
                    self.closing |= frame.is_stop;
                    if frame.carries_tokens {
                        self.meter.content(chunk.len());
                        self.log.first_token();
                    }
                    let repaired = self.blocks.repair(frame.block, frame.data());
                    Some(repaired.unwrap_or(frame.bytes))
                }
                Err(e) => Some(self.fail(e)),
            },
            Some(Err(e)) => Some(self.fail(e)),
            None if self.saw_stop => {
                self.end();
                None
            }
            None => Some(self.fail(ProxyError::Upstream(
                "bedrock's stream ended before message_stop".into(),
            ))),
        }
    }

    /// Forwarding: the deadline first (so a fast stream cannot starve it), then Bedrock, then
    /// the silence timer.
    fn poll_streaming(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some((deadline, timer)) = &mut self.deadline {
            if timer.as_mut().poll(cx).is_ready() {
                let margin = deadline.margin;
                return Poll::Ready(Some(self.fail(ProxyError::DeadlineExceeded(format!(
                    "this Lambda invocation's timeout is {} s away, so the proxy ended the answer here; \
                     raise the function's timeout (at most 900 s) or ask for fewer max_tokens",
                    margin.as_secs_f64()
                )))));
            }
        }
        let Some(upstream) = self.upstream.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(item) = upstream.poll_next_unpin(cx) {
            return Poll::Ready(self.forward(item, cx));
        }
        if self.silence.as_mut().poll(cx).is_ready() {
            if self.last_event.elapsed() >= self.idle_timeout {
                return Poll::Ready(Some(self.fail(ProxyError::Timeout(format!(
                    "bedrock sent nothing for {} s (UPSTREAM_TIMEOUT_SECONDS)",
                    self.idle_timeout.as_secs()
                )))));
            }
            let next = Instant::now() + self.ping_interval;
            self.silence.as_mut().reset(next);
            return Poll::Ready(Some(Bytes::from_static(PING_FRAME)));
        }
        Poll::Pending
    }

    /// A normal end: Bedrock's stream is dropped, and dropping the body later is not taken for
    /// a departed caller.
    fn end(&mut self) {
        self.state = State::Ended;
        self.upstream = None;
    }

    /// The stream failed after it began: one `event: error`, then the end.
    fn fail(&mut self, e: ProxyError) -> Bytes {
        let detail = e.log_detail().unwrap_or_else(|| e.to_string());
        tracing::warn!(error = %detail, "stream failed after it began; sending event: error");
        self.end();
        self.closing = true;
        self.log.outcome(match e {
            ProxyError::DeadlineExceeded(_) => "deadline",
            _ => "stream_error",
        });
        self.log.error(detail);
        self.log.error_type(e.status_and_type().1);
        e.sse_event()
    }
}

impl SseBody {
    /// What the stream used, final or estimated, onto the log line.
    fn record_usage(&self) {
        match self.meter.at_end() {
            (usage, false) => self.log.usage(usage),
            (usage, true) => self.log.estimated_usage(usage),
        }
    }

    /// The last frame is ready: record the usage, and hold the frame until the charge is
    /// written (at once when the request has none).
    fn finish(&mut self, last: Bytes, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.closing = false;
        self.record_usage();
        let Some(charge) = self.log.take_charge() else {
            self.end();
            return Poll::Ready(Some(last).filter(|b| !b.is_empty()));
        };
        let spend = self.log.spend();
        self.state = State::Settling {
            last,
            settle: Box::pin(charge.settle(spend)),
        };
        self.poll_settling(cx)
    }

    fn poll_settling(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let State::Settling { settle, .. } = &mut self.state else {
            return Poll::Ready(None);
        };
        if settle.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let State::Settling { last, .. } = std::mem::replace(&mut self.state, State::Ended) else {
            return Poll::Ready(None);
        };
        self.end();
        // A last event the block repair dropped leaves nothing to write: the end.
        Poll::Ready(Some(last).filter(|b| !b.is_empty()))
    }
}

impl Stream for SseBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Every field is Unpin (the timers are boxed), so the body can be used by `&mut`.
        let this = self.get_mut();
        loop {
            let frame = match &mut this.state {
                State::Ended => return Poll::Ready(None),
                State::Settling { .. } => return this.poll_settling(cx).map(|b| b.map(Ok)),
                State::Waiting { ping_owed, first } => {
                    if std::mem::take(ping_owed) {
                        return Poll::Ready(Some(Ok(Bytes::from_static(PING_FRAME))));
                    }
                    let first = first.take();
                    this.state = State::Streaming;
                    match first {
                        Some(item) => Poll::Ready(this.forward(Some(item), cx)),
                        None => this.poll_streaming(cx),
                    }
                }
                State::Streaming => this.poll_streaming(cx),
            };
            match frame {
                Poll::Ready(Some(last)) if this.closing => return this.finish(last, cx).map(|b| b.map(Ok)),
                // An event the block repair dropped: nothing to write (an empty chunk would
                // read as the end of a chunked body), so on to the next.
                Poll::Ready(Some(bytes)) if bytes.is_empty() => continue,
                frame => return frame.map(|bytes| bytes.map(Ok)),
            }
        }
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.state, State::Ended) {
            State::Ended => return,
            State::Settling { settle, .. } => {
                // The caller left while the charge was being written: finish the write.
                self.log.outcome("client_gone");
                charge::track(settle);
                return;
            }
            State::Waiting { .. } | State::Streaming => {}
        }
        // The body was dropped before the end: the caller went away. What was streamed is
        // still charged; nothing can wait here, so a tracked task writes it.
        self.log.outcome("client_gone");
        self.record_usage();
        if let Some(charge) = self.log.take_charge() {
            charge::settle_later(charge, self.log.spend());
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
