//! The deterministic answer: which content blocks Claude "writes" for a request, as one
//! Anthropic message (InvokeModel) or as the Anthropic stream events that Bedrock wraps
//! in chunk frames (InvokeModelWithResponseStream).

use serde_json::{json, Value};

use crate::guardrail::{self, Outcome};
use crate::ids;
use crate::scenario::Scenario;

/// The default answer, split on its words.
const WORDS: &[&str] = &["Hello", "from", "the", "Bedrock", "emulator."];

const THINKING: &[&str] = &["The user wants a reply. ", "A short greeting ", "will do."];

/// The tool input of `emulator:tool_use`, cut where a model's deltas might cut it.
const TOOL_INPUT_PIECES: &[&str] = &[r#"{"location""#, r#": "Paris""#, r#", "unit": "#, r#""celsius"}"#];

const DEFAULT_TOOL: &str = "get_weather";

/// Text whose pieces are either fixed now or stamped with the time they are sent.
#[derive(Debug, Clone)]
pub enum Pieces {
    /// Fixed text pieces.
    Fixed(Vec<String>),
    /// This many `t=<unix micros>;` pieces, timed when each is produced.
    Stamped(usize),
}

/// One content block of the answer.
#[derive(Debug, Clone)]
pub enum Block {
    /// A `thinking` block with its signature.
    Thinking {
        /// The thinking text in delta-sized pieces.
        pieces: Vec<String>,
        /// The signature sent as one `signature_delta`.
        signature: String,
    },
    /// A `text` block.
    Text(Pieces),
    /// A `tool_use` block whose input JSON streams in pieces.
    ToolUse {
        /// `toolu_bdrk_...`
        id: String,
        /// The first tool of the request, or `get_weather`.
        name: String,
        /// Pieces of the input JSON.
        pieces: Vec<String>,
    },
}

/// One event of the stream; some are finished only at the moment they are sent.
#[derive(Debug, Clone)]
pub enum Planned {
    /// An event complete at planning time.
    Ready(Value),
    /// A `text_delta` whose text is the send time.
    StampedDelta {
        /// Content block index.
        index: usize,
    },
    /// The `message_stop` event, which carries Bedrock's invocation metrics.
    MessageStop,
}

/// Everything needed to answer one request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `msg_bdrk_...`
    pub id: String,
    /// Reported as the message's `model`.
    pub model: String,
    /// Content blocks in order.
    pub blocks: Vec<Block>,
    /// `end_turn` or `tool_use`.
    pub stop_reason: &'static str,
    /// Estimated from the request's text.
    pub input_tokens: u64,
    /// Estimated from the answer's text.
    pub output_tokens: u64,
    /// What the request's guardrail did ([`crate::guardrail::apply`]).
    pub guardrail: Outcome,
}

impl Answer {
    /// Plans the answer to an InvokeModel `body` under `scenario`.
    pub fn plan(body: &Value, scenario: &Scenario, model: &str) -> Self {
        let mut blocks = Vec::new();
        if scenario.thinking {
            blocks.push(Block::Thinking {
                pieces: THINKING.iter().map(|piece| (*piece).to_owned()).collect(),
                signature: ids::signature(),
            });
        }
        let text = if scenario.stamp {
            Pieces::Stamped(scenario.chunks)
        } else if scenario.echo {
            Pieces::Fixed(split_chars(&body.to_string(), scenario.chunks))
        } else {
            Pieces::Fixed(word_pieces(scenario.chunks))
        };
        blocks.push(Block::Text(text));
        if scenario.tool_use {
            let name = body
                .pointer("/tools/0/name")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_TOOL);
            blocks.push(Block::ToolUse {
                id: ids::tool_use_id(),
                name: name.to_owned(),
                pieces: TOOL_INPUT_PIECES.iter().map(|piece| (*piece).to_owned()).collect(),
            });
        }
        let output_chars: usize = blocks.iter().map(block_chars).sum();
        Self {
            id: ids::message_id(),
            model: model.to_owned(),
            stop_reason: if scenario.tool_use { "tool_use" } else { "end_turn" },
            input_tokens: tokens(input_chars(body)),
            output_tokens: tokens(output_chars),
            blocks,
            guardrail: Outcome::Unguarded,
        }
    }

    /// The InvokeModel response body.
    pub fn message(&self) -> Value {
        let content: Vec<Value> = self
            .blocks
            .iter()
            .map(|block| match block {
                Block::Thinking { pieces, signature } => json!({
                    "type": "thinking", "thinking": pieces.concat(), "signature": signature
                }),
                Block::Text(Pieces::Fixed(pieces)) => json!({ "type": "text", "text": pieces.concat() }),
                Block::Text(Pieces::Stamped(count)) => {
                    json!({ "type": "text", "text": (0..*count).map(|_| stamp()).collect::<String>() })
                }
                Block::ToolUse { id, name, pieces } => json!({
                    "type": "tool_use", "id": id, "name": name,
                    "input": serde_json::from_str::<Value>(&pieces.concat()).unwrap_or(Value::Null)
                }),
            })
            .collect();
        let mut message = json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": self.stop_reason,
            "stop_sequence": null,
            "usage": self.usage(self.output_tokens),
        });
        guardrail::mark_message(&self.guardrail, &mut message);
        message
    }

    fn usage(&self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        })
    }

    /// The Anthropic stream events in order, `message_start` to `message_stop`.
    pub fn events(&self) -> Vec<Planned> {
        let start = Planned::Ready(json!({
            "type": "message_start",
            "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": self.usage(1),
            }
        }));
        if let Some(events) = guardrail::blocked_output_events(self, start.clone()) {
            return events;
        }
        let mut events = vec![start];
        for (index, block) in self.blocks.iter().enumerate() {
            let start = match block {
                Block::Thinking { .. } => {
                    json!({ "type": "thinking", "thinking": "", "signature": "" })
                }
                Block::Text(_) => json!({ "type": "text", "text": "" }),
                Block::ToolUse { id, name, .. } => {
                    json!({ "type": "tool_use", "id": id, "name": name, "input": {} })
                }
            };
            events.push(Planned::Ready(json!({
                "type": "content_block_start", "index": index, "content_block": start
            })));
            let delta =
                |delta: Value| Planned::Ready(json!({ "type": "content_block_delta", "index": index, "delta": delta }));
            match block {
                Block::Thinking { pieces, signature } => {
                    events.extend(
                        pieces
                            .iter()
                            .map(|piece| delta(json!({ "type": "thinking_delta", "thinking": piece }))),
                    );
                    events.push(delta(json!({ "type": "signature_delta", "signature": signature })));
                }
                Block::Text(Pieces::Fixed(pieces)) => {
                    events.extend(
                        pieces
                            .iter()
                            .map(|piece| delta(json!({ "type": "text_delta", "text": piece }))),
                    );
                }
                Block::Text(Pieces::Stamped(count)) => {
                    events.extend((0..*count).map(|_| Planned::StampedDelta { index }));
                }
                Block::ToolUse { pieces, .. } => {
                    events.extend(
                        pieces
                            .iter()
                            .map(|piece| delta(json!({ "type": "input_json_delta", "partial_json": piece }))),
                    );
                }
            }
            events.push(Planned::Ready(json!({ "type": "content_block_stop", "index": index })));
        }
        events.push(Planned::Ready(json!({
            "type": "message_delta",
            "delta": { "stop_reason": self.stop_reason, "stop_sequence": null },
            "usage": { "output_tokens": self.output_tokens },
        })));
        events.push(Planned::MessageStop);
        events
    }
}

/// A stamped delta event, timed now.
pub fn stamped_delta(index: usize) -> Value {
    json!({ "type": "content_block_delta", "index": index, "delta": { "type": "text_delta", "text": stamp() } })
}

/// The final event with Bedrock's metrics; latencies in milliseconds.
pub fn message_stop(answer: &Answer, invocation_latency: u128, first_byte_latency: u128) -> Value {
    let mut stop = json!({
        "type": "message_stop",
        "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": answer.input_tokens,
            "outputTokenCount": answer.output_tokens,
            "invocationLatency": invocation_latency,
            "firstByteLatency": first_byte_latency,
        }
    });
    guardrail::mark_stop(&answer.guardrail, &mut stop);
    stop
}

fn stamp() -> String {
    format!("t={};", ids::unix_micros())
}

/// Roughly four characters a token, never zero.
fn tokens(chars: usize) -> u64 {
    u64::try_from(chars / 4).unwrap_or(u64::MAX).max(1)
}

fn block_chars(block: &Block) -> usize {
    match block {
        Block::Thinking { pieces, .. } | Block::ToolUse { pieces, .. } | Block::Text(Pieces::Fixed(pieces)) => {
            pieces.iter().map(|piece| piece.chars().count()).sum()
        }
        // `t=` + 16 digits + `;`
        Block::Text(Pieces::Stamped(count)) => count * 19,
    }
}

/// The characters of all text in `system` and `messages` (text blocks, string contents,
/// and text inside tool results).
pub fn input_chars(body: &Value) -> usize {
    fn text_of(content: &Value) -> usize {
        match content {
            Value::String(text) => text.chars().count(),
            Value::Array(blocks) => blocks
                .iter()
                .map(|block| {
                    let text = block.get("text").map_or(0, text_of);
                    let nested = match block.get("type").and_then(Value::as_str) {
                        Some("tool_result") => block.get("content").map_or(0, text_of),
                        _ => 0,
                    };
                    text + nested
                })
                .sum(),
            _ => 0,
        }
    }
    let system = body.get("system").map_or(0, text_of);
    let messages: usize = body.get("messages").and_then(Value::as_array).map_or(0, |messages| {
        messages
            .iter()
            .map(|message| message.get("content").map_or(0, text_of))
            .sum()
    });
    system + messages
}

/// Tokens counted for `body` (CountTokens and `usage.input_tokens` agree).
pub fn input_tokens(body: &Value) -> u64 {
    tokens(input_chars(body))
}

/// The default answer in `count` pieces: its words grouped evenly, or cycled when more
/// pieces than words are asked for (so `chunks=100` streams 100 deltas).
pub fn word_pieces(count: usize) -> Vec<String> {
    let count = count.max(1);
    if count <= WORDS.len() {
        (0..count)
            .map(|k| {
                let (from, to) = (k * WORDS.len() / count, (k + 1) * WORDS.len() / count);
                let mut piece = WORDS[from..to].join(" ");
                if to < WORDS.len() {
                    piece.push(' ');
                }
                piece
            })
            .collect()
    } else {
        (0..count)
            .map(|k| {
                let word = WORDS[k % WORDS.len()];
                if k + 1 < count {
                    format!("{word} ")
                } else {
                    word.to_owned()
                }
            })
            .collect()
    }
}

/// `text` in at most `count` non-empty pieces of near-equal length.
pub fn split_chars(text: &str, count: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let count = count.clamp(1, chars.len().max(1));
    (0..count)
        .map(|k| {
            chars[k * chars.len() / count..(k + 1) * chars.len() / count]
                .iter()
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_answer_is_three_word_pieces() {
        let pieces = word_pieces(3);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces.concat(), "Hello from the Bedrock emulator.");
    }

    #[test]
    fn any_piece_count_is_honoured() {
        for count in [1, 2, 5, 6, 100] {
            let pieces = word_pieces(count);
            assert_eq!(pieces.len(), count);
            assert!(pieces.iter().all(|piece| !piece.is_empty()));
        }
        assert_eq!(word_pieces(5).concat(), "Hello from the Bedrock emulator.");
    }

    #[test]
    fn split_chars_keeps_every_character() {
        let text = "{\"héllo\":[1,2,3]}";
        let pieces = split_chars(text, 4);
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces.concat(), text);
        assert_eq!(split_chars("ab", 10).len(), 2);
    }

    #[test]
    fn input_tokens_count_system_and_messages() {
        let body = json!({
            "system": [{ "type": "text", "text": "12345678" }],
            "messages": [
                { "role": "user", "content": "1234" },
                { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": "x", "content": "1234" }] }
            ]
        });
        assert_eq!(input_tokens(&body), 4);
        assert_eq!(input_tokens(&json!({ "messages": [] })), 1);
    }
}
