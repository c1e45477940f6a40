//! Bedrock Guardrails on InvokeModel and InvokeModelWithResponseStream, from documented and
//! observed Bedrock behaviour (never from the proxy):
//!
//! - The guardrail comes in the `X-Amzn-Bedrock-GuardrailIdentifier` and
//!   `X-Amzn-Bedrock-GuardrailVersion` headers. Bedrock refuses an identifier without a version,
//!   and a guardrail with a content type other than `application/json`, and checks both values
//!   against its patterns (AWS API reference, InvokeModel, "URI Request Parameters").
//! - An identifier or version it does not know is a 400 `ValidationException`, "The guardrail
//!   identifier or version provided in the request does not exist.", the same words for both
//!   (seen live: a published report of Bedrock Guardrails tests with Claude on InvokeModel,
//!   "Version handling"; also quoted by several projects' troubleshooting notes).
//! - An intervention is not an error: HTTP 200 whose text is the guardrail's blocked-input or
//!   blocked-output message, with `"amazon-bedrock-guardrailAction": "INTERVENED"` (`"NONE"`
//!   when it let the answer through) at the top of the whole answer (AWS API reference,
//!   InvokeModel, "Use a guardrail" example) and on the stream's `message_stop` (Claude Code
//!   2.1.332's Bedrock stream handling reads it there).
//! - A blocked prompt: the model never runs. Whole answer: one text block with the message and
//!   `"stop_reason": null`; stream: `message_start`, one text block with one delta,
//!   `message_delta`, `message_stop` (the live report above, "Streaming behaviour").
//! - A blocked answer mid-stream: the text already released stays, the message arrives as
//!   deltas addressed to a block that was never started, then that block's stop; the open text
//!   block is never stopped. Claude Code 2.1.332 repairs exactly this on its Bedrock path
//!   ("Guardrail block text addressed to block N moved to text block M").
//!
//! The test guardrails are fixed here (see the README): word filters, as a guardrail's word
//! policy would have them.

use axum::http::{header, HeaderMap};
use serde_json::{json, Value};

use crate::answer::{Answer, Block, Pieces, Planned};
use crate::error::BedrockError;

/// One guardrail the emulator knows.
#[derive(Debug)]
pub struct TestGuardrail {
    /// Its identifier (also accepted inside a guardrail ARN).
    pub id: &'static str,
    /// The versions that exist.
    pub versions: &'static [&'static str],
    /// Words that block the prompt (case-insensitive), before the model runs.
    pub input_words: &'static [&'static str],
    /// Words that block the answer where the model writes them.
    pub output_words: &'static [&'static str],
    /// The blocked-input message.
    pub blocked_input: &'static str,
    /// The blocked-output message.
    pub blocked_output: &'static str,
}

/// Bedrock console's default blocked messaging.
const DEFAULT_BLOCKED: &str = "Sorry, the model cannot answer this question.";

/// The guardrails that exist in the emulator's "account".
pub const GUARDRAILS: &[TestGuardrail] = &[
    TestGuardrail {
        id: "emulatorinput1",
        versions: &["DRAFT", "1"],
        input_words: &["contraband"],
        output_words: &[],
        blocked_input: DEFAULT_BLOCKED,
        blocked_output: DEFAULT_BLOCKED,
    },
    // Blocks the emulator's default answer ("Hello from the Bedrock emulator.") at "Bedrock".
    TestGuardrail {
        id: "emulatoroutput1",
        versions: &["DRAFT", "2"],
        input_words: &[],
        output_words: &["bedrock"],
        blocked_input: DEFAULT_BLOCKED,
        blocked_output: "The answer was blocked by the emulator's output guardrail.",
    },
];

const IDENTIFIER_HEADER: &str = "x-amzn-bedrock-guardrailidentifier";
const VERSION_HEADER: &str = "x-amzn-bedrock-guardrailversion";
const IDENTIFIER_PATTERN: &str =
    "(|([a-z0-9]+)|(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:guardrail/[a-z0-9]+))";
const VERSION_PATTERN: &str = "(|([1-9][0-9]{0,7})|(DRAFT))";

/// What the guardrail did to an answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Outcome {
    /// No guardrail on the request: no guardrail key in the answer.
    #[default]
    Unguarded,
    /// The guardrail let the answer through (`"NONE"`).
    Passed,
    /// The prompt was blocked; the answer is this message.
    BlockedInput(String),
    /// The answer was blocked after `released` text pieces; the rest is this message.
    BlockedOutput {
        /// The text deltas that went out before the guardrail stepped in.
        released: Vec<String>,
        /// The blocked-output message.
        message: String,
    },
}

impl Outcome {
    /// The `amazon-bedrock-guardrailAction` value, if the request had a guardrail.
    pub fn action(&self) -> Option<&'static str> {
        match self {
            Self::Unguarded => None,
            Self::Passed => Some("NONE"),
            Self::BlockedInput(_) | Self::BlockedOutput { .. } => Some("INTERVENED"),
        }
    }
}

/// The request's guardrail, if it names one; Bedrock's refusal if the headers are wrong.
pub fn from_headers(headers: &HeaderMap) -> Result<Option<&'static TestGuardrail>, BedrockError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (identifier, version) = (text(IDENTIFIER_HEADER), text(VERSION_HEADER));
    check_pattern("guardrailIdentifier", identifier, IDENTIFIER_PATTERN, valid_identifier)?;
    check_pattern("guardrailVersion", version, VERSION_PATTERN, valid_version)?;
    if identifier.is_empty() {
        return Ok(None);
    }
    if version.is_empty() {
        // A documented refusal; the wording is the emulator's own.
        return Err(BedrockError::validation(
            "A guardrail version is required when a guardrail identifier is specified.",
        ));
    }
    let content_type = text(header::CONTENT_TYPE.as_str());
    if content_type != "application/json" {
        return Err(BedrockError::validation(
            "Guardrails can only be used with the application/json content type.",
        ));
    }
    let id = identifier.rsplit('/').next().unwrap_or(identifier);
    GUARDRAILS
        .iter()
        .find(|g| g.id == id && g.versions.contains(&version))
        .map(Some)
        .ok_or_else(|| {
            BedrockError::validation("The guardrail identifier or version provided in the request does not exist.")
        })
}

/// AWS's wording for a value that breaks a member's pattern.
fn check_pattern(member: &str, value: &str, pattern: &str, valid: fn(&str) -> bool) -> Result<(), BedrockError> {
    if value.is_empty() || valid(value) {
        return Ok(());
    }
    Err(BedrockError::validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: {pattern}"
    )))
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn valid_identifier(id: &str) -> bool {
    if id.len() > 2048 {
        return false;
    }
    if id.chars().all(is_id_char) {
        return true;
    }
    let Some((arn, name)) = id.split_once(":guardrail/") else {
        return false;
    };
    let parts: Vec<&str> = arn.split(':').collect();
    let [prefix, partition, service, region, account] = parts[..] else {
        return false;
    };
    prefix == "arn"
        && (partition == "aws" || partition.starts_with("aws-"))
        && service == "bedrock"
        && (1..=20).contains(&region.len())
        && region.chars().all(|c| is_id_char(c) || c == '-')
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && !name.is_empty()
        && name.chars().all(is_id_char)
}

fn valid_version(version: &str) -> bool {
    version == "DRAFT"
        || (version.len() <= 8 && !version.starts_with('0') && version.chars().all(|c| c.is_ascii_digit()))
}

/// Applies `guardrail` to a planned answer: the prompt (`body`'s system and messages) first,
/// then the answer's text. A blocked answer keeps only its text block.
pub fn apply(answer: &mut Answer, guardrail: Option<&TestGuardrail>, body: &Value) {
    let Some(guardrail) = guardrail else {
        return;
    };
    answer.guardrail = Outcome::Passed;
    if contains_any(&prompt_text(body), guardrail.input_words) {
        answer.guardrail = Outcome::BlockedInput(guardrail.blocked_input.to_owned());
    } else if let Some(released) = released_before_block(answer, guardrail.output_words) {
        answer.guardrail = Outcome::BlockedOutput {
            released,
            message: guardrail.blocked_output.to_owned(),
        };
    }
    let message = match &answer.guardrail {
        Outcome::BlockedInput(message) | Outcome::BlockedOutput { message, .. } => message.clone(),
        Outcome::Unguarded | Outcome::Passed => return,
    };
    answer.blocks = vec![Block::Text(Pieces::Fixed(vec![message.clone()]))];
    answer.stop_reason = "end_turn";
    answer.output_tokens = u64::try_from(message.len() / 4).unwrap_or(u64::MAX).max(1);
}

fn contains_any(text: &str, words: &[&str]) -> bool {
    let text = text.to_lowercase();
    words.iter().any(|word| text.contains(word))
}

/// The text pieces of the answer's text block before the first piece with a blocked word, or
/// `None` when no piece has one.
fn released_before_block(answer: &Answer, words: &[&str]) -> Option<Vec<String>> {
    let pieces = answer.blocks.iter().find_map(|block| match block {
        Block::Text(Pieces::Fixed(pieces)) => Some(pieces),
        _ => None,
    })?;
    let blocked = pieces.iter().position(|piece| contains_any(piece, words))?;
    Some(pieces[..blocked].to_vec())
}

/// All the text a guardrail evaluates: `system` and every message's text.
fn prompt_text(body: &Value) -> String {
    fn collect(value: &Value, out: &mut String) {
        match value {
            Value::String(text) => {
                out.push_str(text);
                out.push(' ');
            }
            Value::Array(items) => items.iter().for_each(|item| collect(item, out)),
            Value::Object(fields) => {
                for key in ["text", "content"] {
                    if let Some(inner) = fields.get(key) {
                        collect(inner, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut text = String::new();
    if let Some(system) = body.get("system") {
        collect(system, &mut text);
    }
    if let Some(messages) = body.get("messages") {
        collect(messages, &mut text);
    }
    text
}

/// The whole answer with the guardrail's marks: the action key, and a blocked prompt's
/// `stop_reason: null`.
pub fn mark_message(outcome: &Outcome, message: &mut Value) {
    let Some(action) = outcome.action() else {
        return;
    };
    message["amazon-bedrock-guardrailAction"] = action.into();
    if matches!(outcome, Outcome::BlockedInput(_)) {
        message["stop_reason"] = Value::Null;
    }
}

/// The stream's `message_stop` with the guardrail's action beside Bedrock's metrics.
pub fn mark_stop(outcome: &Outcome, stop: &mut Value) {
    if let Some(action) = outcome.action() {
        stop["amazon-bedrock-guardrailAction"] = action.into();
    }
}

/// The events of a stream whose answer the guardrail blocked mid-way; `None` for any other
/// outcome (the answer's own events stand).
pub fn blocked_output_events(answer: &Answer, message_start: Planned) -> Option<Vec<Planned>> {
    let Outcome::BlockedOutput { released, message } = &answer.guardrail else {
        return None;
    };
    let mut events = vec![
        message_start,
        Planned::Ready(json!({
            "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" }
        })),
    ];
    let delta = |index: u64, text: &str| {
        Planned::Ready(json!({
            "type": "content_block_delta", "index": index, "delta": { "type": "text_delta", "text": text }
        }))
    };
    events.extend(released.iter().map(|piece| delta(0, piece)));
    // Addressed to a block that never started; block 0 is never stopped.
    events.push(delta(1, message));
    events.push(Planned::Ready(json!({ "type": "content_block_stop", "index": 1 })));
    events.push(Planned::Ready(json!({
        "type": "message_delta",
        "delta": { "stop_reason": "end_turn", "stop_sequence": null },
        "usage": { "output_tokens": answer.output_tokens },
    })));
    events.push(Planned::MessageStop);
    Some(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn known_guardrails_are_found_by_id_or_arn() {
        let by_id = from_headers(&headers(&[
            (IDENTIFIER_HEADER, "emulatorinput1"),
            (VERSION_HEADER, "1"),
        ]));
        assert_eq!(by_id.unwrap().map(|g| g.id), Some("emulatorinput1"));
        let arn = "arn:aws:bedrock:us-east-1:123456789012:guardrail/emulatoroutput1";
        let by_arn = from_headers(&headers(&[(IDENTIFIER_HEADER, arn), (VERSION_HEADER, "DRAFT")]));
        assert_eq!(by_arn.unwrap().map(|g| g.id), Some("emulatoroutput1"));
        assert_eq!(from_headers(&headers(&[])).unwrap().map(|g| g.id), None);
    }

    #[test]
    fn wrong_guardrail_headers_are_bedrocks_validation_errors() {
        let message = |pairs| from_headers(&headers(pairs)).unwrap_err().message;
        let missing = "The guardrail identifier or version provided in the request does not exist.";
        assert_eq!(
            message(&[(IDENTIFIER_HEADER, "nosuchguardrail"), (VERSION_HEADER, "1")]),
            missing
        );
        assert_eq!(
            message(&[(IDENTIFIER_HEADER, "emulatorinput1"), (VERSION_HEADER, "7")]),
            missing
        );
        assert!(message(&[(IDENTIFIER_HEADER, "emulatorinput1")]).contains("version is required"));
        assert!(message(&[(IDENTIFIER_HEADER, "Bad-Id"), (VERSION_HEADER, "1")]).contains("'guardrailIdentifier'"));
        assert!(
            message(&[(IDENTIFIER_HEADER, "emulatorinput1"), (VERSION_HEADER, "draft")]).contains("'guardrailVersion'")
        );
        let mut text_plain = headers(&[(IDENTIFIER_HEADER, "emulatorinput1"), (VERSION_HEADER, "1")]);
        text_plain.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(from_headers(&text_plain)
            .unwrap_err()
            .message
            .contains("application/json"));
    }

    #[test]
    fn the_prompt_text_covers_system_strings_and_blocks() {
        let body = json!({
            "system": [{"type": "text", "text": "sys"}],
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "user", "content": [{"type": "text", "text": "two"},
                    {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "three"}]}]}
            ]
        });
        let text = prompt_text(&body);
        for word in ["sys", "one", "two", "three"] {
            assert!(text.contains(word), "{word} in {text}");
        }
    }
}
