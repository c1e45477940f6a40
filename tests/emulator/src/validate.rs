//! The checks Bedrock makes before invoking Claude: the model identifier, the
//! `anthropic-beta` HTTP header and the InvokeModel body, each failing with Bedrock's
//! 400 `ValidationException` wording (pydantic-style dotted paths).
//!
//! What Bedrock accepts is not copied from the proxy. It is learned from what
//! Anthropic's own client sent the real Bedrock (the recorded Claude Code requests, see
//! [`crate::captures`]) and widened only by facts with a named source: AWS's
//! documentation and Claude Code 2.1.332's own code. So the emulator and the proxy can
//! disagree, and a test then shows who is right.
//!
//! The per-level checks (messages, tools, `cache_control`) live in `Shape`, which
//! [`crate::mantle`] reuses for Bedrock's Anthropic Messages endpoint with its own
//! learned keys.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use crate::captures::{self, Capture};
use crate::error::BedrockError;

mod model;
pub use model::*;

/// The only `anthropic_version` Bedrock accepts.
pub const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// Cross-region inference profile prefixes, e.g. `us.anthropic.claude-...`.
pub const PROFILE_PREFIXES: &[&str] = &["global", "us", "eu", "apac", "jp", "au"];

/// The beta that lets custom tools `defer_loading` and results carry `tool_reference`
/// blocks: Claude Code 2.1.332's Bedrock name for `advanced-tool-use-2025-11-20`.
pub const TOOL_SEARCH_BETA: &str = "tool-search-tool-2025-10-19";

/// AWS, Bedrock user guide, "Anthropic Claude Messages API" (inference parameters): the
/// request body fields it documents.
const AWS_BODY_KEYS: &[&str] = &[
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "system",
    "messages",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "tools",
    "tool_choice",
];

/// AWS, same page: a message's `role` is `user` or `assistant`. (Claude Code's captures
/// add `system`, for the mid-conversation system messages it sends.)
pub(crate) const AWS_ROLES: &[&str] = &["user", "assistant"];

/// AWS, Bedrock user guide, the beta flags it lists as supported for Claude
/// (`anthropic_beta`).
const AWS_BETAS: &[&str] = &[
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "token-efficient-tools-2025-02-19",
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "dev-full-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "tool-examples-2025-10-29",
    "tool-search-tool-2025-10-19",
    "fine-grained-tool-streaming-2025-05-14",
];

/// AWS, Bedrock user guide, prompt caching: a `cache_control` object takes `type` and
/// `ttl`.
pub(crate) const AWS_CACHE_CONTROL_KEYS: &[&str] = &["type", "ttl"];

/// Custom-tool keys with a source beyond the captures: `type` and `cache_control` (AWS
/// "Anthropic Claude Messages API"), `input_examples` (AWS's `tool-examples-2025-10-29`
/// beta), `strict` (structured outputs, whose `structured-outputs-2025-12-15` beta Claude
/// Code 2.1.332 allows on Bedrock).
pub(crate) const DOCUMENTED_CUSTOM_TOOL_KEYS: &[&str] = &["type", "cache_control", "input_examples", "strict"];

/// Claude Code 2.1.332: the betas it puts in the Bedrock body's `anthropic_beta`.
pub(crate) const CLAUDE_CODE_BODY_BETAS: &[&str] = &[
    "interleaved-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "tool-search-tool-2025-10-19",
    "thinking-token-count-2026-05-13",
    "thinking-binding-controls-2026-08-01",
    "thinking-display-updates-2026-08-18",
    "dangerous-tool-use-2026-09-03",
    "fallback-credit-2026-06-01",
    "afk-mode-2026-01-31",
];

/// Claude Code 2.1.332: the betas it allows in the `anthropic-beta` HTTP header to
/// Bedrock, besides its body list.
pub(crate) const CLAUDE_CODE_HEADER_BETAS: &[&str] = &[
    "claude-code-20250219",
    "effort-2025-11-24",
    "structured-outputs-2025-12-15",
    "web-search-2025-03-05",
];

/// Claude Code 2.1.332: the models whose custom tools it gives `eager_input_streaming`
/// on Bedrock (plus the `fable-5` family, see [`streams_tool_input_eagerly`]).
const CLAUDE_CODE_EAGER_STREAMING_MODELS: &[&str] = &[
    "sonnet-4-6",
    "sonnet-5",
    "sonnet-5-5",
    "opus-4-7",
    "opus-4-8",
    "opus-5",
    "opus-5-5",
    "fable-5",
];

/// AWS, Bedrock user guide, "Monitor your token usage by counting tokens before running
/// inference": "Some Anthropic Claude models – including those that launch with
/// cross-Region inference (CRIS) only on bedrock-runtime – don't support CountTokens on
/// bedrock-runtime"; Claude Code 2.1.332 says "AWS counts some newer Claude models only
/// on bedrock-mantle". These are the no-date families of Claude Code's Bedrock table that
/// are reached only through inference profiles (plus every `fable-5-N`); the dated ids,
/// `sonnet-4-6` and `opus-4-6-v1` keep their Runtime count.
const COUNTED_ONLY_ON_MANTLE: &[&str] = &[
    "opus-4-7",
    "opus-4-8",
    "opus-5",
    "opus-5-5",
    "sonnet-5",
    "sonnet-5-5",
    "haiku-5-5",
    "fable-5",
];

/// What one upstream takes at each level of a body, betas aside: the top-level keys,
/// message keys and roles, custom-tool keys and `cache_control` keys. Starts from the
/// documented ones and grows with every captured body it is shown.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub(crate) top_level_keys: BTreeSet<String>,
    message_keys: BTreeSet<String>,
    /// In the order an error message lists them: documented first, then as seen.
    roles: Vec<String>,
    custom_tool_keys: BTreeSet<String>,
    cache_control_keys: BTreeSet<String>,
}

/// What Bedrock accepts: what the captures show, plus the documented facts above.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The recorded requests the rules were learned from.
    pub captures: Vec<Capture>,
    shape: Shape,
    body_betas: BTreeSet<String>,
    header_betas: BTreeSet<String>,
}

static RULES: OnceLock<Result<Rules, String>> = OnceLock::new();

/// The rules, learned from every capture under [`captures::CAPTURES_DIR`] on first use.
/// An error (unreadable captures) is kept, so every request reports it.
pub fn rules() -> Result<&'static Rules, String> {
    RULES
        .get_or_init(|| captures::load(Path::new(captures::CAPTURES_DIR)).map(Rules::learn))
        .as_ref()
        .map_err(Clone::clone)
}

pub(crate) fn strings(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

impl Rules {
    /// Learns from `captures`: every key, role, beta and `cache_control` key that
    /// Claude Code sent Bedrock is accepted, on top of the documented ones.
    pub fn learn(captures: Vec<Capture>) -> Self {
        let mut rules = Self {
            captures: Vec::new(),
            shape: Shape::documented(AWS_BODY_KEYS),
            body_betas: strings(CLAUDE_CODE_BODY_BETAS)
                .union(&strings(AWS_BETAS))
                .cloned()
                .collect(),
            header_betas: strings(CLAUDE_CODE_HEADER_BETAS),
        };
        for capture in &captures {
            rules.learn_from(capture);
        }
        // A flag Bedrock takes in the body it also takes in the header.
        let body_betas = rules.body_betas.clone();
        rules.header_betas.extend(body_betas);
        rules.captures = captures;
        rules
    }

    fn learn_from(&mut self, capture: &Capture) {
        let Some(body) = capture.body.as_object() else {
            return;
        };
        self.shape.learn(body);
        let body_betas = body.get("anthropic_beta").and_then(Value::as_array);
        self.body_betas.extend(
            body_betas
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned),
        );
        if let Some(header) = &capture.beta_header {
            self.header_betas.extend(beta_flags(header));
        }
    }
}

impl Shape {
    /// The documented shape: these top-level keys, AWS's roles, custom-tool keys and
    /// `cache_control` keys, and no message key yet (the captures bring `role`/`content`).
    pub(crate) fn documented(top_level_keys: &[&str]) -> Self {
        Self {
            top_level_keys: strings(top_level_keys),
            message_keys: BTreeSet::new(),
            roles: AWS_ROLES.iter().map(|role| (*role).to_owned()).collect(),
            custom_tool_keys: strings(DOCUMENTED_CUSTOM_TOOL_KEYS),
            cache_control_keys: strings(AWS_CACHE_CONTROL_KEYS),
        }
    }

    /// Accepts every key, role and `cache_control` key of a body the upstream took.
    pub(crate) fn learn(&mut self, body: &Map<String, Value>) {
        self.top_level_keys.extend(body.keys().cloned());
        let messages = body.get("messages").and_then(Value::as_array);
        for message in messages.into_iter().flatten().filter_map(Value::as_object) {
            self.message_keys.extend(message.keys().cloned());
            if let Some(role) = message.get("role").and_then(Value::as_str) {
                if !self.roles.iter().any(|known| known == role) {
                    self.roles.push(role.to_owned());
                }
            }
        }
        let tools = body.get("tools").and_then(Value::as_array);
        for tool in tools.into_iter().flatten().filter_map(Value::as_object) {
            if is_custom_tool(tool) {
                self.custom_tool_keys.extend(tool.keys().cloned());
            }
        }
        for (_, block) in cache_control_sites(body) {
            if let Some(Value::Object(cache_control)) = block.get("cache_control") {
                self.cache_control_keys.extend(cache_control.keys().cloned());
            }
        }
    }
}

/// The flags of one `anthropic-beta` header value: comma separated, spaces trimmed.
pub fn beta_flags(header: &str) -> Vec<String> {
    header
        .split(',')
        .map(str::trim)
        .filter(|flag| !flag.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The flags of every `anthropic-beta` header of a request: it may be repeated, and
/// each occurrence is a comma-separated list.
pub fn header_betas(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("anthropic-beta")
        .iter()
        .flat_map(|value| beta_flags(&String::from_utf8_lossy(value.as_bytes())))
        .collect()
}

/// What a body is judged with besides itself.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The model the URL names; it decides whether custom tools may stream eagerly.
    pub model: &'a ModelRef,
    /// The flags of the `anthropic-beta` HTTP header (see [`beta_flags`]); empty if absent.
    pub header_betas: &'a [String],
}

/// Parses and validates an InvokeModel body, returning it as JSON.
pub fn body(bytes: &[u8], context: Context<'_>) -> Result<Value, BedrockError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|error| {
        BedrockError::validation(format!(
            "Malformed input request: {error}, please reformat your input and try again."
        ))
    })?;
    invoke_body(&value, context)?;
    Ok(value)
}

/// Validates an already parsed InvokeModel body with the [`rules`].
pub fn invoke_body(value: &Value, context: Context<'_>) -> Result<(), BedrockError> {
    // Unreadable captures are the emulator's fault, not the request's: a 500 that says so.
    let rules = rules().map_err(|error| BedrockError {
        name: "InternalServerException".to_owned(),
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("emulator: cannot learn Bedrock's rules: {error}"),
    })?;
    rules.check(value, context)
}

pub(crate) fn extra_input(path: &str) -> BedrockError {
    BedrockError::validation(format!("{path}: Extra inputs are not permitted"))
}

pub(crate) fn field_required(path: &str) -> BedrockError {
    BedrockError::validation(format!("{path}: Field required"))
}

pub(crate) fn invalid_beta() -> BedrockError {
    BedrockError::validation("invalid beta flag")
}

/// Custom tools have no `type` or `type: "custom"`; typed ones are Anthropic's server
/// and client tools (`bash_20250124`, `tool_search_tool_regex_20251119`, ...).
fn is_custom_tool(tool: &Map<String, Value>) -> bool {
    matches!(tool.get("type").and_then(Value::as_str), None | Some("custom"))
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

/// The blocks that may carry a `cache_control`, with their paths: system blocks, tools,
/// message content blocks and the blocks nested in a `tool_result`. Only these, so a
/// tool's `input_schema` or a `tool_use` input with a `cache_control` property is left alone.
fn cache_control_sites(body: &Map<String, Value>) -> Vec<(String, &Value)> {
    let mut sites = Vec::new();
    if let Some(Value::Array(blocks)) = body.get("system") {
        sites.extend(
            blocks
                .iter()
                .enumerate()
                .map(|(i, block)| (format!("system.{i}"), block)),
        );
    }
    if let Some(Value::Array(tools)) = body.get("tools") {
        sites.extend(tools.iter().enumerate().map(|(i, tool)| (format!("tools.{i}"), tool)));
    }
    let messages = body.get("messages").and_then(Value::as_array);
    for (m, message) in messages.into_iter().flatten().enumerate() {
        let Some(Value::Array(blocks)) = message.get("content") else {
            continue;
        };
        for (b, block) in blocks.iter().enumerate() {
            let path = format!("messages.{m}.content.{b}");
            if let Some(Value::Array(inner)) = block.get("content") {
                sites.extend(
                    inner
                        .iter()
                        .enumerate()
                        .map(|(i, inner_block)| (format!("{path}.content.{i}"), inner_block)),
                );
            }
            sites.push((path, block));
        }
    }
    sites
}

impl Rules {
    /// Checks one body in the order Bedrock reports problems: shape and required fields
    /// first, then betas, messages, tools and `cache_control`.
    pub fn check(&self, value: &Value, context: Context<'_>) -> Result<(), BedrockError> {
        let Some(body) = value.as_object() else {
            return Err(BedrockError::validation(
                "Malformed input request: expected type: JSONObject, please reformat your input and try again.",
            ));
        };
        self.shape.check_top_level_keys(body)?;
        match body.get("anthropic_version") {
            None => return Err(field_required("anthropic_version")),
            Some(Value::String(version)) if version == ANTHROPIC_VERSION => {}
            Some(_) => {
                return Err(BedrockError::validation(format!(
                    "anthropic_version: Input should be '{ANTHROPIC_VERSION}'"
                )))
            }
        }
        check_max_tokens(body)?;
        let messages = required_messages(body)?;
        let body_betas = self.body_betas(body)?;
        if !context.header_betas.iter().all(|flag| self.header_betas.contains(flag)) {
            return Err(invalid_beta());
        }
        let tool_search =
            body_betas.contains(&TOOL_SEARCH_BETA) || context.header_betas.iter().any(|flag| flag == TOOL_SEARCH_BETA);
        self.shape.check_parts(body, messages, tool_search, context.model)
    }

    /// The body's `anthropic_beta`: an array of strings Bedrock knows, or the request fails.
    fn body_betas<'v>(&self, body: &'v Map<String, Value>) -> Result<Vec<&'v str>, BedrockError> {
        let Some(betas) = body.get("anthropic_beta") else {
            return Ok(Vec::new());
        };
        let Some(betas) = betas.as_array() else {
            return Err(invalid_beta());
        };
        betas
            .iter()
            .map(|beta| {
                beta.as_str()
                    .filter(|beta| self.body_betas.contains(*beta))
                    .ok_or_else(invalid_beta)
            })
            .collect()
    }
}

/// `max_tokens`: a required integer of at least 1.
pub(crate) fn check_max_tokens(body: &Map<String, Value>) -> Result<(), BedrockError> {
    match body.get("max_tokens") {
        None => Err(field_required("max_tokens")),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => Ok(()),
        Some(Value::Number(n)) if n.is_i64() => Err(BedrockError::validation(
            "max_tokens: Input should be greater than or equal to 1",
        )),
        Some(_) => Err(BedrockError::validation("max_tokens: Input should be a valid integer")),
    }
}

/// `messages`: a required, non-empty list.
pub(crate) fn required_messages(body: &Map<String, Value>) -> Result<&[Value], BedrockError> {
    match body.get("messages") {
        None => Err(field_required("messages")),
        Some(Value::Array(messages)) if messages.is_empty() => Err(BedrockError::validation(
            "messages: List should have at least 1 item after validation, not 0",
        )),
        Some(Value::Array(messages)) => Ok(messages),
        Some(_) => Err(BedrockError::validation("messages: Input should be a valid list")),
    }
}

impl Shape {
    /// Every top-level key is one the upstream takes.
    pub(crate) fn check_top_level_keys(&self, body: &Map<String, Value>) -> Result<(), BedrockError> {
        match body.keys().find(|key| !self.top_level_keys.contains(*key)) {
            Some(key) => Err(extra_input(key)),
            None => Ok(()),
        }
    }

    /// The checks below the top level, in the order Bedrock reports them: messages,
    /// tools, then `cache_control`. `tool_search` says the tool-search beta is on.
    pub(crate) fn check_parts(
        &self,
        body: &Map<String, Value>,
        messages: &[Value],
        tool_search: bool,
        model: &ModelRef,
    ) -> Result<(), BedrockError> {
        self.check_messages(messages, tool_search)?;
        self.check_tools(body, tool_search, model)?;
        self.check_cache_controls(body)
    }

    fn check_messages(&self, messages: &[Value], tool_search: bool) -> Result<(), BedrockError> {
        for (m, message) in messages.iter().enumerate() {
            let path = format!("messages.{m}");
            let Some(message) = message.as_object() else {
                return Err(BedrockError::validation(format!(
                    "{path}: Input should be a valid dictionary"
                )));
            };
            if let Some(key) = message.keys().find(|key| !self.message_keys.contains(*key)) {
                return Err(extra_input(&format!("{path}.{key}")));
            }
            let role = match message.get("role") {
                None => return Err(field_required(&format!("{path}.role"))),
                Some(Value::String(role)) if self.roles.contains(role) => role.as_str(),
                Some(_) => return Err(self.unknown_role(&path)),
            };
            let blocks = match message.get("content") {
                None => return Err(field_required(&format!("{path}.content"))),
                Some(Value::Array(blocks)) => blocks,
                Some(_) => continue,
            };
            for (b, block) in blocks.iter().enumerate() {
                let path = format!("{path}.content.{b}");
                match block_type(block) {
                    Some("thinking") if role == "assistant" => check_signature(block, &path)?,
                    Some("tool_result") if !tool_search => check_no_tool_reference(block, &path)?,
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Pydantic's wording for a literal: `Input should be 'a', 'b' or 'c'`.
    fn unknown_role(&self, path: &str) -> BedrockError {
        let quoted: Vec<String> = self.roles.iter().map(|role| format!("'{role}'")).collect();
        let listed = match quoted.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => quoted.concat(),
        };
        BedrockError::validation(format!("{path}.role: Input should be {listed}"))
    }

    fn check_tools(&self, body: &Map<String, Value>, tool_search: bool, model: &ModelRef) -> Result<(), BedrockError> {
        let Some(tools) = body.get("tools").and_then(Value::as_array) else {
            return Ok(());
        };
        let eager = streams_tool_input_eagerly(model);
        for (index, tool) in tools.iter().enumerate() {
            // Typed tools pass unchecked: their schemas are Anthropic's, not the captures'.
            let Some(tool) = tool.as_object().filter(|tool| is_custom_tool(tool)) else {
                continue;
            };
            let refused = tool.keys().find(|key| {
                let allowed = match key.as_str() {
                    "defer_loading" => tool_search,
                    "eager_input_streaming" => eager,
                    _ => true,
                };
                !allowed || !self.custom_tool_keys.contains(*key)
            });
            if let Some(key) = refused {
                return Err(extra_input(&format!("tools.{index}.custom.{key}")));
            }
        }
        Ok(())
    }

    fn check_cache_controls(&self, body: &Map<String, Value>) -> Result<(), BedrockError> {
        for (path, block) in cache_control_sites(body) {
            let Some(Value::Object(cache_control)) = block.get("cache_control") else {
                continue;
            };
            if let Some(key) = cache_control.keys().find(|key| !self.cache_control_keys.contains(*key)) {
                return Err(extra_input(&format!("{path}.cache_control.{key}")));
            }
        }
        Ok(())
    }
}

/// An assistant's `thinking` block goes back to Bedrock with the signature it came with.
fn check_signature(block: &Value, path: &str) -> Result<(), BedrockError> {
    match block.get("signature") {
        Some(Value::String(_)) => Ok(()),
        None => Err(field_required(&format!("{path}.thinking.signature"))),
        Some(_) => Err(BedrockError::validation(format!(
            "{path}.thinking.signature: Input should be a valid string"
        ))),
    }
}

/// Without the tool-search beta, a `tool_result` holds only the ordinary block types.
fn check_no_tool_reference(block: &Value, path: &str) -> Result<(), BedrockError> {
    let Some(Value::Array(inner)) = block.get("content") else {
        return Ok(());
    };
    match inner.iter().position(|inner| block_type(inner) == Some("tool_reference")) {
        Some(i) => Err(BedrockError::validation(format!(
            "{path}.content.{i}: Input tag 'tool_reference' found using 'type' does not match any of the expected tags: 'text', 'image', 'search_result', 'document'"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
