//! The content blocks of one stream, and the repair a guardrail's intervention needs.
//!
//! When a Bedrock guardrail blocks an answer mid-stream, Bedrock sends the guardrail's message as
//! `content_block_delta`s addressed to a block that was never started, then that block's
//! `content_block_stop`, while the text block the model was writing is never stopped; its
//! `message_stop` carries `"amazon-bedrock-guardrailAction": "INTERVENED"`. Claude Code 2.1.332
//! repairs exactly this on its own Bedrock path ("Guardrail block text addressed to block N moved
//! to text block M"): the stray deltas go to the open text block, and that block is stopped once.
//! Anthropic's SDKs, which read the proxy's stream, index their content by `index` and fail on a
//! delta for a block that was never started (the `anthropic` Python SDK 2.17's accumulator raises
//! `IndexError`), so the proxy makes the same repair for everyone.
//! A stream whose blocks are well formed passes untouched.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};

/// What one event does to the content blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockEvent {
    /// `content_block_start` (`text` when the block is a text block).
    Start {
        /// The block's index.
        index: u64,
        /// A `text` block.
        text: bool,
    },
    /// `content_block_delta`.
    Delta {
        /// The block it is addressed to.
        index: u64,
    },
    /// `content_block_stop`.
    Stop {
        /// The block it ends.
        index: u64,
    },
    /// `message_delta`, before which every block must have ended.
    MessageDelta,
    /// Anything else.
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    index: u64,
    text: bool,
}

/// The blocks seen so far in one stream.
#[derive(Debug, Default)]
pub struct Blocks {
    /// The block started and not yet stopped (Anthropic streams one block at a time).
    open: Option<Open>,
    /// One past the highest index started: a delta at or above it is addressed to no block.
    started: u64,
    /// A never-started index whose deltas now go to another block.
    moved: Option<(u64, u64)>,
}

impl Blocks {
    /// The bytes to send in place of an event whose JSON is `data`, or `None` to send its frame
    /// as it is. An empty replacement drops the event.
    pub fn repair(&mut self, event: BlockEvent, data: &[u8]) -> Option<Bytes> {
        match event {
            BlockEvent::Start { index, text } => {
                self.open = Some(Open { index, text });
                self.started = self.started.max(index.saturating_add(1));
                None
            }
            BlockEvent::Delta { index } => self.delta(index, data),
            BlockEvent::Stop { index } => self.stop(index),
            BlockEvent::MessageDelta => {
                // A block left open (the one a stray block's text was moved into, say) ends here.
                let open = self.open.take()?;
                let mut out = BytesMut::new();
                put_frame(&mut out, "content_block_stop", &stop_event(open.index));
                out.put_slice(b"event: message_delta\ndata: ");
                out.put_slice(data);
                out.put_slice(b"\n\n");
                Some(out.freeze())
            }
            BlockEvent::Other => None,
        }
    }

    fn delta(&mut self, index: u64, data: &[u8]) -> Option<Bytes> {
        if let Some((from, to)) = self.moved {
            if from == index {
                return readdressed(data, to);
            }
        }
        if index < self.started {
            return None;
        }
        tracing::warn!(
            index,
            "stream delta for a block that never started (a guardrail's message); moving it to a started block"
        );
        let mut out = BytesMut::new();
        let to = match self.open {
            Some(open) if open.text => open.index,
            open => {
                // No text block to take the text: end the open one, start a text block.
                if let Some(open) = open {
                    put_frame(&mut out, "content_block_stop", &stop_event(open.index));
                }
                let to = self.started;
                let start =
                    json!({"type": "content_block_start", "index": to, "content_block": {"type": "text", "text": ""}});
                put_frame(&mut out, "content_block_start", &start);
                self.open = Some(Open { index: to, text: true });
                self.started = to.saturating_add(1);
                to
            }
        };
        self.moved = Some((index, to));
        out.put_slice(&readdressed(data, to)?);
        Some(out.freeze())
    }

    fn stop(&mut self, index: u64) -> Option<Bytes> {
        if let Some((from, to)) = self.moved {
            if from == index {
                // The stray block's stop ends the block its text went to, once.
                return Some(match self.open.take() {
                    Some(open) if open.index == to => frame_bytes("content_block_stop", &stop_event(to)),
                    other => {
                        self.open = other;
                        Bytes::new()
                    }
                });
            }
        }
        if index >= self.started {
            // A stop for a block that never started would fail the SDKs as a stray delta does.
            return Some(Bytes::new());
        }
        if self.open.is_some_and(|open| open.index == index) {
            self.open = None;
        }
        None
    }
}

fn stop_event(index: u64) -> Value {
    json!({"type": "content_block_stop", "index": index})
}

/// The delta `data` addressed to block `to`; `None` (sent as it came) if it is not JSON, which
/// `reframe` has already ruled out.
fn readdressed(data: &[u8], to: u64) -> Option<Bytes> {
    let mut event: Value = serde_json::from_slice(data).ok()?;
    event.as_object_mut()?.insert("index".into(), to.into());
    Some(frame_bytes("content_block_delta", &event))
}

fn frame_bytes(kind: &str, event: &Value) -> Bytes {
    let mut out = BytesMut::new();
    put_frame(&mut out, kind, event);
    out.freeze()
}

fn put_frame(out: &mut BytesMut, kind: &str, event: &Value) {
    out.put_slice(b"event: ");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\ndata: ");
    // A JSON value always serialises; serde_json escapes line breaks inside strings.
    out.put_slice(&serde_json::to_vec(event).unwrap_or_default());
    out.put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::parse_frames;

    fn delta(index: u64, text: &str) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
        )
        .unwrap()
    }

    /// Feeds `events` through the repair and returns what the caller would read.
    fn run(events: &[(BlockEvent, Vec<u8>, &str)]) -> Vec<(String, Value)> {
        let mut blocks = Blocks::default();
        let mut out = Vec::new();
        for (event, data, kind) in events {
            match blocks.repair(*event, data) {
                Some(bytes) => out.extend_from_slice(&bytes),
                None => {
                    out.extend_from_slice(format!("event: {kind}\ndata: ").as_bytes());
                    out.extend_from_slice(data);
                    out.extend_from_slice(b"\n\n");
                }
            }
        }
        parse_frames(&out).unwrap()
    }

    fn plain(value: Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn a_guardrail_message_for_a_never_started_block_joins_the_open_text_block() {
        let start =
            plain(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}));
        let stray_stop = plain(json!({"type": "content_block_stop", "index": 1}));
        let message_delta = plain(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}));
        let frames = run(&[
            (BlockEvent::Start { index: 0, text: true }, start, "content_block_start"),
            (
                BlockEvent::Delta { index: 0 },
                delta(0, "Here is "),
                "content_block_delta",
            ),
            (
                BlockEvent::Delta { index: 1 },
                delta(1, "Sorry."),
                "content_block_delta",
            ),
            (BlockEvent::Stop { index: 1 }, stray_stop, "content_block_stop"),
            (BlockEvent::MessageDelta, message_delta, "message_delta"),
        ]);
        let kinds: Vec<&str> = frames.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta"
            ]
        );
        assert!(frames[1..4].iter().all(|(_, v)| v["index"] == 0), "{frames:?}");
        assert_eq!(frames[2].1["delta"]["text"], "Sorry.");
    }

    #[test]
    fn a_stray_delta_with_no_open_text_block_gets_a_block_of_its_own() {
        let start = plain(
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "n", "input": {}}}),
        );
        let message_delta = plain(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}));
        let frames = run(&[
            (
                BlockEvent::Start { index: 0, text: false },
                start,
                "content_block_start",
            ),
            (
                BlockEvent::Delta { index: 4 },
                delta(4, "Sorry."),
                "content_block_delta",
            ),
            (BlockEvent::MessageDelta, message_delta, "message_delta"),
        ]);
        let kinds: Vec<(&str, &Value)> = frames.iter().map(|(k, v)| (k.as_str(), &v["index"])).collect();
        assert_eq!(
            kinds,
            [
                ("content_block_start", &json!(0)),
                ("content_block_stop", &json!(0)),
                ("content_block_start", &json!(1)),
                ("content_block_delta", &json!(1)),
                ("content_block_stop", &json!(1)),
                ("message_delta", &Value::Null),
            ]
        );
    }

    #[test]
    fn well_formed_blocks_pass_untouched() {
        let mut blocks = Blocks::default();
        assert_eq!(blocks.repair(BlockEvent::Start { index: 0, text: true }, b"{}"), None);
        assert_eq!(blocks.repair(BlockEvent::Delta { index: 0 }, &delta(0, "a")), None);
        assert_eq!(blocks.repair(BlockEvent::Stop { index: 0 }, b"{}"), None);
        assert_eq!(blocks.repair(BlockEvent::Start { index: 1, text: false }, b"{}"), None);
        assert_eq!(blocks.repair(BlockEvent::Stop { index: 1 }, b"{}"), None);
        assert_eq!(blocks.repair(BlockEvent::MessageDelta, b"{}"), None);
        assert_eq!(blocks.repair(BlockEvent::Other, b"{}"), None);
    }

    #[test]
    fn a_stop_for_a_block_that_never_started_is_dropped() {
        let mut blocks = Blocks::default();
        assert_eq!(blocks.repair(BlockEvent::Stop { index: 2 }, b"{}"), Some(Bytes::new()));
    }
}
