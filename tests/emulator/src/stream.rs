//! Writing a streamed answer frame by frame, on either wire: Bedrock Runtime's
//! event-stream chunks (InvokeModelWithResponseStream) or the Anthropic SSE events of
//! Bedrock's Anthropic Messages endpoint (Mantle). A producer task plans nothing itself:
//! it walks the [`Answer`]'s events, sleeps as the scenario says, and stops at once when
//! the client has gone.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use futures_util::Stream;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::answer::{self, Answer, Planned};
use crate::anthropic_error::AnthropicError;
use crate::frames;
use crate::scenario::Scenario;
use crate::sse;
use crate::state::{State, StreamGuard};

/// Small on purpose: the producer should block on a slow reader rather than run
/// ahead, as Bedrock's model does not outpace the connection by much either.
const FRAME_CHANNEL_CAPACITY: usize = 4;

/// One piece of the body, or the error that makes hyper drop the connection.
pub type Frame = Result<Bytes, io::Error>;

/// How the events of an answer are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Bedrock Runtime: event-stream `chunk` frames, exceptions as exception frames, and
    /// Bedrock's invocation metrics in `message_stop`.
    EventStream,
    /// Mantle: Anthropic SSE, a `ping` after `message_start`, exceptions as
    /// `event: error` with the Anthropic error they map to, no Bedrock metrics.
    Sse,
}

/// Starts the producer of `answer` and returns the response body it feeds.
pub fn body(state: Arc<State>, wire: Wire, answer: Answer, scenario: Scenario, started: Instant) -> Body {
    let (sender, receiver) = mpsc::channel(FRAME_CHANNEL_CAPACITY);
    tokio::spawn(produce(sender, wire, answer, scenario, started));
    Body::from_stream(FrameStream {
        receiver,
        guard: StreamGuard::open(state),
        held_error: None,
    })
}

/// A body of unknown length with no frame: hyper sends chunked encoding and then at
/// once its terminating chunk, a well-formed body with zero frames (`emulator:empty_stream`).
pub fn empty_body() -> Body {
    Body::from_stream(futures_util::stream::empty::<Frame>())
}

/// The streaming body: frames from the producer task, with the guard that tells a
/// finished stream from one the client abandoned.
struct FrameStream {
    receiver: mpsc::Receiver<Frame>,
    guard: StreamGuard,
    /// The `cut_after` error, held back for one poll (see `poll_next`).
    held_error: Option<io::Error>,
}

impl Stream for FrameStream {
    type Item = Frame;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        if let Some(error) = self.held_error.take() {
            self.guard.finish();
            return Poll::Ready(Some(Err(error)));
        }
        let item = ready!(self.receiver.poll_recv(cx));
        // Hyper discards what it has not flushed when the body fails, and it flushes
        // when the body is pending: so pend once before the error, or the frames sent
        // just before a `cut_after` would never reach the client.
        if let Some(Err(error)) = item {
            self.held_error = Some(error);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // The producer wrote all it meant to, so the drop that follows is not a cancel.
        if item.is_none() {
            self.guard.finish();
        }
        Poll::Ready(item)
    }
}

/// What ends a stream early, and after how many events.
enum Interruption {
    Exception(String),
    Garbage,
    Cut,
}

fn interruption(scenario: &Scenario) -> Option<(usize, Interruption)> {
    let candidates = [
        scenario
            .stream_exception_after
            .clone()
            .map(|(after, kind)| (after, Interruption::Exception(kind))),
        scenario.garbage_after.map(|after| (after, Interruption::Garbage)),
        scenario.cut_after.map(|after| (after, Interruption::Cut)),
    ];
    candidates.into_iter().flatten().min_by_key(|(after, _)| *after)
}

/// Sleeps unless the body is dropped first; false when nobody is listening any more.
async fn pause(sender: &mpsc::Sender<Frame>, duration: Duration) -> bool {
    if duration.is_zero() {
        return !sender.is_closed();
    }
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        () = sender.closed() => false,
    }
}

/// The frame that ends a stream with the exception `kind` (`throttlingException`, ...).
fn exception_frame(wire: Wire, kind: &str) -> Result<Bytes, io::Error> {
    match wire {
        Wire::EventStream => frames::exception(kind, frames::exception_message(kind)).map_err(io::Error::other),
        Wire::Sse => Ok(sse::event(&AnthropicError::named(kind).body())),
    }
}

/// The frame of one planned event; `message_stop` is finished now, with the latencies
/// so far on the event-stream wire.
fn event_frame(wire: Wire, answer: &Answer, planned: &Planned, seq: usize, latencies: (u128, u128)) -> Frame {
    let event = match planned {
        Planned::Ready(event) => event.clone(),
        Planned::StampedDelta { index } => answer::stamped_delta(*index),
        Planned::MessageStop => match wire {
            Wire::EventStream => answer::message_stop(answer, latencies.0, latencies.1),
            Wire::Sse => json!({ "type": "message_stop" }),
        },
    };
    match wire {
        Wire::EventStream => frames::chunk(&event, seq).map_err(io::Error::other),
        Wire::Sse if is_message_start(&event) => Ok(sse::message_start_and_ping(&event)),
        Wire::Sse => Ok(sse::event(&event)),
    }
}

fn is_message_start(event: &Value) -> bool {
    event.get("type").and_then(Value::as_str) == Some("message_start")
}

/// Writes the frames of one streamed answer, each handed to hyper as soon as it exists.
/// Stops as soon as the body is dropped, like Bedrock stops billing a closed stream.
async fn produce(sender: mpsc::Sender<Frame>, wire: Wire, answer: Answer, scenario: Scenario, started: Instant) {
    let events = answer.events();
    let interruption = interruption(&scenario).map(|(after, what)| (after.min(events.len()), what));
    let mut first_byte_latency = None;
    for seq in 0..=events.len() {
        let interrupt_here = matches!(&interruption, Some((after, _)) if *after == seq);
        if seq == events.len() && !interrupt_here {
            return;
        }
        let wait = if seq == 0 { scenario.first_delay } else { scenario.delay };
        if !pause(&sender, wait).await {
            return;
        }
        let frame = match &interruption {
            Some((after, what)) if *after == seq => match what {
                Interruption::Exception(kind) => exception_frame(wire, kind),
                Interruption::Garbage => match wire {
                    Wire::EventStream => frames::garbage(seq).map_err(io::Error::other),
                    Wire::Sse => Ok(sse::garbage()),
                },
                Interruption::Cut => {
                    // An error from the body makes hyper drop the connection without
                    // the final empty chunk: the client sees a truncated body.
                    let _ = sender.send(Err(io::Error::other("emulator: cut_after"))).await;
                    return;
                }
            },
            _ => {
                let Some(planned) = events.get(seq) else {
                    return;
                };
                let first_byte = *first_byte_latency.get_or_insert_with(|| started.elapsed().as_millis());
                event_frame(wire, &answer, planned, seq, (started.elapsed().as_millis(), first_byte))
            }
        };
        let failed = frame.is_err();
        if sender.send(frame).await.is_err() || failed {
            return;
        }
        if interrupt_here {
            return;
        }
    }
}
