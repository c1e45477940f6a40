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

/// Bedrock's addition to answers (the whole answer, or a stream's `message_stop`): its token
/// counts and latencies. Callers never see it.
pub const BEDROCK_METRICS_KEY: &str = "amazon-bedrock-invocationMetrics";

/// Bedrock's non-streaming answer as the caller should see it, with its token counts.
/// The bytes pass through untouched unless Bedrock added its invocation metrics object.
pub fn from_bedrock_response(
    answer: bytes::Bytes,
) -> Result<(bytes::Bytes, Option<crate::usage::request_log::Usage>), ProxyError> {
    let unreadable = || ProxyError::Upstream("bedrock's answer is not a JSON object".into());
    let mut value: Value = serde_json::from_slice(&answer).map_err(|_| unreadable())?;
    let object = value.as_object_mut().ok_or_else(unreadable)?;
    let usage = object
        .get("usage")
        .map(crate::usage::request_log::Usage::from_anthropic);
    if object.remove(BEDROCK_METRICS_KEY).is_none() {
        return Ok((answer, usage));
    }
    let bytes = serde_json::to_vec(&value).map_err(|_| unreadable())?;
    Ok((bytes::Bytes::from(bytes), usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_of_millions_of_tiny_values_is_refused_before_it_is_parsed() {
        let mut body = b"{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":5,\"messages\":[],\"x\":[".to_vec();
        body.extend(std::iter::repeat_n(b"0,".as_slice(), MAX_JSON_VALUES).flatten());
        body.extend_from_slice(b"0]}");
        assert!(matches!(
            parse_request(&body, Endpoint::Messages),
            Err(ProxyError::RequestTooLarge(_))
        ));
        // Commas inside strings are text, not values.
        let text = format!(
            "{{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
            ",".repeat(MAX_JSON_VALUES * 2)
        );
        assert!(parse_request(text.as_bytes(), Endpoint::Messages).is_ok());
    }
    use serde_json::json;

    const OPUS: &str = "us.anthropic.claude-opus-5-5";

    fn invoke(body: Value, header_betas: &[&str], model_id: &str) -> UpstreamRequest {
        let req = parse_request(body.to_string().as_bytes(), Endpoint::Messages).unwrap();
        to_upstream(
            req,
            Api::Invoke,
            model_id,
            header_betas.iter().copied(),
            &BetaFilter::default(),
        )
    }

    fn bedrock_body(body: Value, header_betas: &[&str]) -> Value {
        Value::Object(invoke(body, header_betas, OPUS).body)
    }

    fn minimal() -> Value {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    }

    #[test]
    fn model_and_stream_leave_the_body_and_version_is_set() {
        let mut body = minimal();
        body["stream"] = json!(true);
        let out = bedrock_body(body, &[]);
        assert_eq!(out["anthropic_version"], BEDROCK_ANTHROPIC_VERSION);
        assert!(out.get("model").is_none());
        assert!(out.get("stream").is_none());
        assert!(out.get("anthropic_beta").is_none());
    }

    #[test]
    fn claude_codes_betas_are_moved_copied_renamed_or_dropped_as_it_does_for_bedrock() {
        let req = invoke(
            minimal(),
            &["claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,per-turn-control-2026-07-01,mid-conversation-tool-changes-2026-07-01,thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20,effort-2025-11-24"],
            OPUS,
        );
        assert_eq!(
            req.body_betas(),
            [
                "interleaved-thinking-2025-05-14",
                "tool-search-tool-2025-10-19",
                "thinking-token-count-2026-05-13"
            ]
        );
        assert_eq!(
            req.beta_header().as_deref(),
            Some("claude-code-20250219,thinking-token-count-2026-05-13,effort-2025-11-24")
        );
    }

    #[test]
    fn unknown_and_first_party_only_flags_are_dropped() {
        let req = invoke(
            minimal(),
            &[
                "oauth-2025-04-20, prompt-caching-scope-2026-01-05",
                "brand-new-2027-01-01,tool-provenance-2026-10-26",
            ],
            OPUS,
        );
        assert!(req.body_betas().is_empty());
        assert_eq!(req.beta_header(), None);
    }

    #[test]
    fn extra_beta_flags_extend_the_table() {
        let filter = BetaFilter::new(vec!["new-flag-2027-01-01".into()]);
        let placed = filter.place_all(["new-flag-2027-01-01,other"], Api::Invoke);
        assert_eq!(placed.body, ["new-flag-2027-01-01"]);
        let placed = filter.place_all(["new-flag-2027-01-01"], Api::Mantle);
        assert_eq!(placed.header, ["new-flag-2027-01-01"]);
    }

    #[test]
    fn flags_in_the_body_are_placed_like_the_headers() {
        let mut body = minimal();
        body["anthropic_beta"] = json!(["context-1m-2025-08-07", "oauth-2025-04-20"]);
        let req = invoke(body, &["context-1m-2025-08-07"], OPUS);
        assert_eq!(req.body_betas(), ["context-1m-2025-08-07"]);
    }

    #[test]
    fn fields_bedrock_refuses_are_dropped() {
        let mut body = minimal();
        for k in [
            "mcp_servers",
            "service_tier",
            "container",
            "speed",
            "output_format",
            "diagnostics",
            "brand_new_field",
        ] {
            body[k] = json!("x");
        }
        body["metadata"] = json!({"user_id": "{\"device_id\":\"d\"}", "other": 1});
        body["thinking"] = json!({"type": "adaptive", "display": "omitted"});
        body["output_config"] = json!({"effort": "high"});
        body["context_management"] = json!({"edits": []});
        let out = bedrock_body(body, &[]);
        let mut keys: Vec<&str> = out.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "anthropic_version",
                "max_tokens",
                "messages",
                "metadata",
                "output_config",
                "thinking"
            ]
        );
        assert_eq!(out["thinking"], json!({"type": "adaptive", "display": "omitted"}));
        assert_eq!(out["metadata"], json!({"user_id": "{\"device_id\":\"d\"}"}));
    }

    #[test]
    fn messages_keep_only_role_and_content_and_system_turns_stay() {
        let mut body = minimal();
        body["messages"] = json!([
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "text", "text": "s"}], "output_config": {"effort": "medium"}}
        ]);
        let out = bedrock_body(body, &[]);
        assert_eq!(
            out["messages"][1],
            json!({"role": "system", "content": [{"type": "text", "text": "s"}]})
        );
    }

    #[test]
    fn tools_keep_defer_loading_and_eager_input_streaming_only_where_claude_code_sends_it() {
        let mut body = minimal();
        body["tools"] = json!([
            {"name": "a", "input_schema": {"type": "object"}, "defer_loading": true, "eager_input_streaming": true,
             "allowed_callers": ["x"], "cache_control": {"type": "ephemeral", "ttl": "1h", "scope": "global"}},
            {"type": "tool_search_tool_regex_20251119", "name": "tool_search", "anything": 1}
        ]);
        let out = bedrock_body(body.clone(), &[]);
        assert_eq!(
            out["tools"][0],
            json!({"name": "a", "input_schema": {"type": "object"}, "defer_loading": true,
                   "eager_input_streaming": true, "cache_control": {"type": "ephemeral", "ttl": "1h"}})
        );
        // Server tools keep their own fields.
        assert_eq!(out["tools"][1]["anything"], json!(1));
        let haiku = Value::Object(invoke(body, &[], "us.anthropic.claude-haiku-4-5-20251001-v1:0").body);
        assert!(haiku["tools"][0].get("eager_input_streaming").is_none());
        assert_eq!(haiku["tools"][0]["defer_loading"], json!(true));
    }

    #[test]
    fn cache_control_scope_is_dropped_everywhere_and_content_is_untouched() {
        let mut body = minimal();
        body["system"] = json!([{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "scope": "x"}}]);
        body["messages"] = json!([{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [
                {"type": "text", "text": "r", "cache_control": {"type": "ephemeral", "scope": "y"}},
                {"type": "tool_reference", "tool_name": "Bash"}
            ]},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
        ]}]);
        let out = bedrock_body(body, &[]);
        assert_eq!(out["system"][0]["cache_control"], json!({"type": "ephemeral"}));
        let blocks = &out["messages"][0]["content"];
        assert_eq!(blocks[0]["content"][0]["cache_control"], json!({"type": "ephemeral"}));
        assert_eq!(
            blocks[0]["content"][1],
            json!({"type": "tool_reference", "tool_name": "Bash"})
        );
        assert_eq!(blocks[1]["source"]["data"], "AAAA");
    }

    #[test]
    fn mantle_gets_the_first_party_shape_with_its_model_id_and_every_flag_in_the_header() {
        let mut body = minimal();
        body["stream"] = json!(true);
        body["context_management"] = json!({"edits": []});
        body["messages"] = json!([{"role": "user", "content": "hi", "output_config": {"effort": "low"}}]);
        let req = parse_request(body.to_string().as_bytes(), Endpoint::Messages).unwrap();
        let out = to_upstream(
            req,
            Api::Mantle,
            "anthropic.claude-opus-5-5",
            ["claude-code-20250219,context-management-2025-06-27,per-turn-control-2026-07-01,advanced-tool-use-2025-11-20"],
            &BetaFilter::default(),
        );
        assert_eq!(out.body["model"], "anthropic.claude-opus-5-5");
        assert_eq!(out.body["stream"], true);
        assert_eq!(out.body["context_management"], json!({"edits": []}));
        assert!(!out.body.contains_key("anthropic_version") && !out.body.contains_key("anthropic_beta"));
        assert_eq!(out.body["messages"][0], json!({"role": "user", "content": "hi"}));
        assert_eq!(
            out.header_betas,
            [
                "claude-code-20250219",
                "context-management-2025-06-27",
                "tool-search-tool-2025-10-19"
            ]
        );
    }

    #[test]
    fn malformed_bodies_are_400s_that_name_the_field() {
        let cases: &[(&[u8], &str)] = &[
            (b"{not json", "not valid JSON"),
            (b"", "empty"),
            (b"\xff\xfe", "not valid JSON"),
            (b"[1,2]", "JSON object"),
            (br#"{"model": 5, "max_tokens": 1, "messages": []}"#, "model"),
            (
                br#"{"model": "m", "max_tokens": 1, "messages": [], "stream": "yes"}"#,
                "stream",
            ),
            (br#"{"model": "m", "max_tokens": "1", "messages": []}"#, "max_tokens"),
            (br#"{"model": "m", "max_tokens": 1}"#, "messages"),
            (br#"{"model": "m", "messages": []}"#, "max_tokens"),
        ];
        for (body, needle) in cases {
            match parse_request(body, Endpoint::Messages) {
                Err(ProxyError::InvalidRequest(m)) => assert!(m.contains(needle), "{m}"),
                other => panic!("{:?} gave {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    #[test]
    fn answers_pass_through_unless_bedrock_added_metrics() {
        let plain = bytes::Bytes::from_static(br#"{"id":"msg_bdrk_1","usage":{"input_tokens":3,"output_tokens":4}}"#);
        let (out, usage) = from_bedrock_response(plain.clone()).unwrap();
        assert_eq!(out, plain);
        assert_eq!(usage.unwrap().output, 4);
        let with_metrics =
            bytes::Bytes::from_static(br#"{"id":"m","amazon-bedrock-invocationMetrics":{"inputTokenCount":1}}"#);
        let (out, _) = from_bedrock_response(with_metrics).unwrap();
        assert_eq!(out.as_ref(), br#"{"id":"m"}"#);
        assert!(from_bedrock_response(bytes::Bytes::from_static(b"garbage")).is_err());
    }

    #[test]
    fn count_tokens_bodies_need_no_max_tokens() {
        let body = br#"{"model": "m", "messages": []}"#;
        assert!(parse_request(body, Endpoint::CountTokens).is_ok());
    }
}

#[cfg(test)]
mod fuzz {
    //! Property tests: whatever a caller sends, translation never panics, and what reaches
    //! Bedrock is always a JSON object with the required version and only fields and flags the
    //! rules table sends.
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("cache_control".to_string()),
                        Just("content".to_string()),
                        Just("tools".to_string()),
                        Just("type".to_string()),
                        "[a-z_]{1,10}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_bytes_give_a_request_or_a_400(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            match parse_request(&bytes, Endpoint::Messages) {
                Ok(_) | Err(ProxyError::InvalidRequest(_)) => {}
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        #[test]
        fn any_object_translates_to_a_bedrock_object(
            extra in prop::collection::btree_map("[a-z_]{1,12}", json_value(), 0..8),
            tools in json_value(),
            messages in prop::collection::vec(json_value(), 0..4),
            betas in prop::collection::vec("[a-z0-9,-]{0,30}", 0..4),
        ) {
            let mut body: Map<String, Value> = extra.into_iter().collect();
            body.insert("model".into(), Value::from("claude-sonnet-4-5"));
            body.insert("max_tokens".into(), Value::from(5));
            body.insert("messages".into(), Value::from(messages));
            body.insert("tools".into(), tools);
            body.remove("stream");
            let bytes = serde_json::to_vec(&Value::Object(body)).unwrap();
            let request = parse_request(&bytes, Endpoint::Messages).unwrap();
            let model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
            let out = to_upstream(request, Api::Invoke, model, betas.iter().map(String::as_str), &BetaFilter::default());
            prop_assert_eq!(&out.body["anthropic_version"], BEDROCK_ANTHROPIC_VERSION);
            prop_assert!(out.body.keys().all(|k| k == "anthropic_version" || k == "anthropic_beta"
                || rules::keeps(Level::Top, k, Api::Invoke, model)));
            for flag in out.body_betas().into_iter().chain(out.header_betas.iter().map(String::as_str)) {
                prop_assert!(rules::beta_rule(flag).is_some_and(|r| !matches!(r.invoke, BetaPlace::Drop)));
            }
        }
    }
}
