//! Anthropic body → upstream request: validation of what the caller sent, then the rules table
//! (`rules`) applied at every level: top-level fields, messages, tools, `cache_control`,
//! `metadata`, and where each beta flag goes. Also Bedrock's additions removed from answers.
//!
//! Bedrock's Anthropic schema rejects unknown keys ("Extra inputs are not permitted") and
//! unknown beta flags ("invalid beta flag"), so on InvokeModel everything the table does not
//! know is dropped (logged at debug level, names only, never values).

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::ProxyError;
use crate::translate::rules::{self, BetaPlace, Level};
use crate::upstream::Api;

/// A validated `/v1/messages` (or `count_tokens`) request.
#[derive(Debug, Clone, Default)]
pub struct MessagesRequest {
    /// The model the caller asked for.
    pub model: String,
    /// Whether the caller asked for SSE.
    pub stream: bool,
    /// The rest of the body, still in Anthropic form.
    pub body: Map<String, Value>,
}

/// Which endpoint a body is for: `count_tokens` bodies have no `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/messages`
    Messages,
    /// `POST /v1/messages/count_tokens`
    CountTokens,
}

/// At most this many JSON values (array elements and object members) in one body. A parsed
/// value costs ~50 bytes however small its text, so 6 MiB of `[0,0,…]` would be ~3 M values
/// and well over 100 MB; Claude Code's largest conversations are text in long strings and stay
/// far below this. Checked on the bytes before anything is parsed.
pub const MAX_JSON_VALUES: usize = 400_000;

/// Counts the separators of JSON values outside strings (`,` `[` `{` `:`): an upper bound on
/// the values a parse would build, in one pass with no allocation.
fn json_value_count(bytes: &[u8]) -> usize {
    let (mut n, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b',' | b'[' | b'{' | b':' => n += 1,
                _ => {}
            }
        }
    }
    n
}

/// Parses and type-checks a request body. Every problem is a 400 that names the field.
pub fn parse_request(bytes: &[u8], endpoint: Endpoint) -> Result<MessagesRequest, ProxyError> {
    let invalid = |m: String| ProxyError::InvalidRequest(m);
    let values = json_value_count(bytes);
    if values > MAX_JSON_VALUES {
        return Err(ProxyError::RequestTooLarge(format!(
            "request body has about {values} JSON values; at most {MAX_JSON_VALUES} are accepted"
        )));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            invalid("request body is empty; send a JSON object".into())
        } else {
            invalid(format!("request body is not valid JSON: {e}"))
        }
    })?;
    let Value::Object(mut body) = value else {
        return Err(invalid("request body must be a JSON object".into()));
    };
    let model = match body.remove("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m,
        Some(Value::String(_)) => return Err(invalid("model: must not be empty".into())),
        Some(_) => return Err(invalid("model: must be a string".into())),
        None => return Err(invalid("model: field required".into())),
    };
    let stream = match body.remove("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(invalid("stream: must be a boolean".into())),
    };
    match body.get("messages") {
        Some(Value::Array(_)) => {}
        Some(_) => return Err(invalid("messages: must be an array".into())),
        None => return Err(invalid("messages: field required".into())),
    }
    match (body.get("max_tokens"), endpoint) {
        (Some(v), _) if v.as_u64().is_some_and(|n| n >= 1) => {}
        (Some(_), _) => return Err(invalid("max_tokens: must be a positive integer".into())),
        (None, Endpoint::Messages) => return Err(invalid("max_tokens: field required".into())),
        (None, Endpoint::CountTokens) => {}
    }
    Ok(MessagesRequest { model, stream, body })
}

/// The `anthropic_version` Bedrock requires in every InvokeModel body.
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// What goes upstream: the model to call, the body, and the flags for the `anthropic-beta`
/// HTTP header (signed with the request; Claude Code sends some flags only there).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamRequest {
    /// The upstream model ID (in the URL on InvokeModel).
    pub model_id: String,
    /// The body, already in the upstream's shape.
    pub body: Map<String, Value>,
    /// Flags for the `anthropic-beta` header, in the caller's order.
    pub header_betas: Vec<String>,
}

impl UpstreamRequest {
    /// The body as JSON bytes.
    pub fn body_bytes(&self) -> Bytes {
        // Serialising a map of JSON values cannot fail.
        let mut bytes = serde_json::to_vec(&self.body).unwrap_or_default();
        // The buffer grew by doubling; up to half of it would be held, unused, for as long as
        // the request is in flight.
        bytes.shrink_to_fit();
        bytes.into()
    }

    /// The `anthropic-beta` header value, if any flag goes there.
    pub fn beta_header(&self) -> Option<String> {
        (!self.header_betas.is_empty()).then(|| self.header_betas.join(","))
    }

    /// The body's `anthropic_beta` flags.
    pub fn body_betas(&self) -> Vec<&str> {
        let flags = self.body.get("anthropic_beta").and_then(Value::as_array);
        flags.into_iter().flatten().filter_map(Value::as_str).collect()
    }
}

/// Places `anthropic-beta` flags by the rules table, plus the operator's `EXTRA_BETA_FLAGS`.
#[derive(Debug, Clone, Default)]
pub struct BetaFilter {
    extra: Vec<String>,
}

/// Where a request's beta flags go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacedBetas {
    /// Into the body's `anthropic_beta`: the moved flags first, then the copied ones, each in
    /// the caller's order (the order Claude Code itself uses).
    pub body: Vec<String>,
    /// Into the `anthropic-beta` HTTP header, in the caller's order.
    pub header: Vec<String>,
}

impl BetaFilter {
    /// A filter with the rules table plus `extra` flags (sent in the body on InvokeModel).
    pub fn new(extra: Vec<String>) -> Self {
        Self { extra }
    }

    /// Where each flag goes, after renames; unknown flags are dropped.
    fn place(&self, flag: &str, upstream: Api) -> Option<(String, BetaPlace)> {
        let mut flag = flag;
        // A rename lands on a flag the table places; two steps bound a bad table.
        for _ in 0..2 {
            let place = match rules::beta_rule(flag) {
                Some(rule) => match upstream {
                    Api::Invoke => rule.invoke,
                    Api::Mantle => rule.mantle,
                },
                None if self.extra.iter().any(|f| f == flag) => match upstream {
                    Api::Invoke => BetaPlace::Body,
                    Api::Mantle => BetaPlace::Header,
                },
                None => BetaPlace::Drop,
            };
            match place {
                BetaPlace::Rename(to) => flag = to,
                BetaPlace::Drop => {
                    tracing::debug!(flag, "dropping anthropic-beta flag the upstream does not take");
                    return None;
                }
                place => return Some((flag.to_string(), place)),
            }
        }
        None
    }

    /// Places flags from `anthropic-beta` header values (comma separated, possibly repeated)
    /// and any given in the body, without duplicates.
    pub fn place_all<'a>(&self, values: impl IntoIterator<Item = &'a str>, upstream: Api) -> PlacedBetas {
        let mut moved = Vec::new();
        let mut copied = Vec::new();
        let mut header = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for flag in values.into_iter().flat_map(|v| v.split(',')).map(str::trim) {
            if flag.is_empty() {
                continue;
            }
            let Some((flag, place)) = self.place(flag, upstream) else {
                continue;
            };
            if seen.contains(&flag) {
                continue;
            }
            seen.push(flag.clone());
            match place {
                BetaPlace::Body => moved.push(flag),
                BetaPlace::Both => {
                    copied.push(flag.clone());
                    header.push(flag);
                }
                _ => header.push(flag),
            }
        }
        moved.extend(copied);
        PlacedBetas { body: moved, header }
    }
}

/// Turns a validated request into what `upstream` accepts: on InvokeModel the Bedrock body
/// (`anthropic_version` set, moved flags in `anthropic_beta`, the model left for the URL); on
/// Mantle the first-party body with the Mantle model ID. `header_betas` are the caller's
/// `anthropic-beta` header values.
///
/// The request is consumed: its JSON tree becomes the upstream body without a copy.
pub fn to_upstream<'a>(
    request: MessagesRequest,
    upstream: Api,
    model_id: &str,
    header_betas: impl IntoIterator<Item = &'a str>,
    filter: &BetaFilter,
) -> UpstreamRequest {
    // The header's flags first, then the body's, in the caller's order.
    let mut flags: Vec<&str> = Vec::new();
    for flag in header_betas {
        flags.push(flag);
    }
    let body_flags = request.body.get("anthropic_beta").and_then(Value::as_array);
    flags.extend(body_flags.into_iter().flatten().filter_map(Value::as_str));
    let betas = filter.place_all(flags, upstream);

    let mut out = Map::with_capacity(request.body.len() + 2);
    match upstream {
        Api::Invoke => {
            out.insert(
                "anthropic_version".into(),
                Value::String(BEDROCK_ANTHROPIC_VERSION.into()),
            );
            if !betas.body.is_empty() {
                out.insert("anthropic_beta".into(), Value::from(betas.body));
            }
        }
        Api::Mantle => {
            out.insert("model".into(), Value::String(model_id.into()));
            if request.stream {
                out.insert("stream".into(), Value::Bool(true));
            }
        }
    }
    for (key, value) in request.body {
        if matches!(key.as_str(), "anthropic_beta" | "anthropic_version") {
            continue;
        }
        if rules::keeps(Level::Top, &key, upstream, model_id) {
            out.insert(key, value);
        } else {
            tracing::debug!(field = %key, "dropping field the upstream does not take");
        }
    }
    clean_body(&mut out, upstream, model_id);
    UpstreamRequest {
        model_id: model_id.to_string(),
        body: out,
        header_betas: betas.header,
    }
}

/// Applies the table below the top level: messages, tools, `cache_control` and `metadata`.
fn clean_body(body: &mut Map<String, Value>, upstream: Api, model_id: &str) {
    let keep = |level: Level| {
        move |key: &String, _: &mut Value| -> bool {
            let kept = rules::keeps(level, key, upstream, model_id);
            if !kept {
                tracing::debug!(field = %key, ?level, "dropping field the upstream does not take");
            }
            kept
        }
    };
    if let Some(Value::Array(messages)) = body.get_mut("messages") {
        for message in messages.iter_mut() {
            if let Value::Object(fields) = message {
                fields.retain(keep(Level::Message));
                if let Some(content) = fields.get_mut("content") {
                    clean_cache_control(content, &keep(Level::CacheControl));
                }
            }
        }
    }
    if let Some(system) = body.get_mut("system") {
        clean_cache_control(system, &keep(Level::CacheControl));
    }
    if let Some(Value::Array(tools)) = body.get_mut("tools") {
        for tool in tools.iter_mut().filter_map(Value::as_object_mut) {
            let custom = matches!(tool.get("type").and_then(Value::as_str), None | Some("custom"));
            if custom {
                tool.retain(keep(Level::CustomTool));
            }
            if let Some(Value::Object(cc)) = tool.get_mut("cache_control") {
                cc.retain(keep(Level::CacheControl));
            }
        }
    }
    if let Some(Value::Object(metadata)) = body.get_mut("metadata") {
        metadata.retain(keep(Level::Metadata));
    }
}

/// Walks content blocks (and nested tool_result content) applying the table to every
/// `cache_control`.
fn clean_cache_control(value: &mut Value, keep: &impl Fn(&String, &mut Value) -> bool) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|item| clean_cache_control(item, keep)),
        Value::Object(fields) => {
            if let Some(Value::Object(cc)) = fields.get_mut("cache_control") {
                cc.retain(keep);
            }
            if let Some(content) = fields.get_mut("content") {
                clean_cache_control(content, keep);
            }
        }
        _ => {}
    }
}

/// Bedrock's non-streaming answer as the caller should see it.
#[derive(Debug)]
pub struct WholeAnswer {
    /// The answer's JSON: Bedrock's bytes untouched unless Bedrock added keys of its own
    /// (`amazon-bedrock-*`), which are removed.
    pub body: bytes::Bytes,
    /// The answer's token counts.
    pub usage: Option<crate::usage::request_log::Usage>,
    /// A guardrail replaced the answer with its blocked-input or blocked-output message.
    pub guardrail_intervened: bool,
}

/// Bedrock's non-streaming answer as the caller should see it (see [`WholeAnswer`]).
pub fn from_bedrock_response(answer: bytes::Bytes) -> Result<WholeAnswer, ProxyError> {
    let unreadable = || ProxyError::Upstream("bedrock's answer is not a JSON object".into());
    let mut value: Value = serde_json::from_slice(&answer).map_err(|_| unreadable())?;
    let object = value.as_object_mut().ok_or_else(unreadable)?;
    let usage = object
        .get("usage")
        .map(crate::usage::request_log::Usage::from_anthropic);
    if !object
        .keys()
        .any(|k| k.starts_with(crate::translate::answer::BEDROCK_PREFIX))
    {
        return Ok(WholeAnswer {
            body: answer,
            usage,
            guardrail_intervened: false,
        });
    }
    let removed = crate::translate::answer::strip_message(object);
    let bytes = serde_json::to_vec(&value).map_err(|_| unreadable())?;
    Ok(WholeAnswer {
        body: bytes::Bytes::from(bytes),
        usage,
        guardrail_intervened: removed.intervened,
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
