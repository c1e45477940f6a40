//! Anthropic body ↔ Bedrock body: validation of what the caller sent, the field allowlist, the
//! beta-flag table, `cache_control`/tool clean-up, and Bedrock's additions removed from answers.
//!
//! Bedrock's Anthropic schema rejects unknown keys ("Extra inputs are not permitted") and
//! unknown beta flags ("invalid beta flag"), so everything here is an allowlist: what is not
//! known to be accepted is dropped (and logged at debug level, names only, never values).

use serde_json::{Map, Value};

use crate::error::ProxyError;

/// The `anthropic_version` Bedrock requires in every body.
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// Top-level fields Bedrock's Anthropic schema accepts. Everything else (`model`, `stream`,
/// `mcp_servers`, `service_tier`, `container`, `speed`, `output_format`, unknown fields) is dropped.
pub const BEDROCK_FIELDS: &[&str] = &[
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "messages",
    "system",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
    "output_config",
    "context_management",
];

/// `anthropic-beta` flags Bedrock accepts. Others fail the whole request on Bedrock, so they
/// are dropped; `EXTRA_BETA_FLAGS` extends this table without a release.
pub const BEDROCK_BETA_FLAGS: &[&str] = &[
    "interleaved-thinking-2025-05-14",
    "context-1m-2025-08-07",
    "context-management-2025-06-27",
    "effort-2025-11-24",
    "tool-search-tool-2025-10-19",
    "tool-examples-2025-10-29",
    "fine-grained-tool-streaming-2025-05-14",
    "token-efficient-tools-2025-02-19",
    "output-128k-2025-02-19",
    "computer-use-2024-10-22",
    "computer-use-2025-01-24",
    "dev-full-thinking-2025-05-14",
];

/// Keys of a custom tool that Bedrock rejects.
const REJECTED_CUSTOM_TOOL_KEYS: &[&str] = &["defer_loading", "eager_input_streaming"];

/// Keys of `cache_control` that Bedrock accepts.
const CACHE_CONTROL_KEYS: &[&str] = &["type", "ttl"];

/// A validated `/v1/messages` (or `count_tokens`) request.
#[derive(Debug)]
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

/// Parses and type-checks a request body. Every problem is a 400 that names the field.
pub fn parse_request(bytes: &[u8], endpoint: Endpoint) -> Result<MessagesRequest, ProxyError> {
    let invalid = |m: String| ProxyError::InvalidRequest(m);
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

/// Decides which `anthropic-beta` flags reach Bedrock.
#[derive(Debug, Clone, Default)]
pub struct BetaFilter {
    extra: Vec<String>,
}

impl BetaFilter {
    /// A filter with the built-in table plus `extra` flags.
    pub fn new(extra: Vec<String>) -> Self {
        Self { extra }
    }

    fn accepts(&self, flag: &str) -> bool {
        BEDROCK_BETA_FLAGS.contains(&flag) || self.extra.iter().any(|f| f == flag)
    }

    /// The supported flags from `anthropic-beta` header values (comma separated, possibly
    /// repeated), in the order given, without duplicates.
    pub fn filter<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut kept: Vec<String> = Vec::new();
        for flag in values.into_iter().flat_map(|v| v.split(',')).map(str::trim) {
            if flag.is_empty() || kept.iter().any(|k| k == flag) {
                continue;
            }
            if self.accepts(flag) {
                kept.push(flag.to_string());
            } else {
                tracing::debug!(flag, "dropping anthropic-beta flag bedrock does not accept");
            }
        }
        kept
    }
}

/// Turns a validated request into the InvokeModel body Bedrock accepts.
pub fn to_bedrock_body(request: &MessagesRequest, header_betas: Vec<String>, filter: &BetaFilter) -> Vec<u8> {
    let mut out = Map::with_capacity(request.body.len() + 1);
    let mut betas = header_betas;
    for (key, value) in &request.body {
        match key.as_str() {
            // Flags in the body get the same filtering as the header's.
            "anthropic_beta" => {
                let listed = value.as_array().into_iter().flatten().filter_map(Value::as_str);
                for flag in filter.filter(listed) {
                    if !betas.contains(&flag) {
                        betas.push(flag);
                    }
                }
            }
            "anthropic_version" => {}
            k if BEDROCK_FIELDS.contains(&k) => {
                out.insert(key.clone(), value.clone());
            }
            _ => tracing::debug!(field = %key, "dropping field bedrock does not accept"),
        }
    }
    out.insert(
        "anthropic_version".into(),
        Value::String(BEDROCK_ANTHROPIC_VERSION.into()),
    );
    if !betas.is_empty() {
        out.insert("anthropic_beta".into(), Value::from(betas));
    }
    if let Some(Value::Array(tools)) = out.get_mut("tools") {
        tools.iter_mut().for_each(clean_tool);
    }
    for key in ["system", "messages"] {
        if let Some(v) = out.get_mut(key) {
            clean_cache_control(v);
        }
    }
    // Serialising a Map of Values cannot fail.
    serde_json::to_vec(&Value::Object(out)).unwrap_or_default()
}

/// Bedrock's non-streaming answer as the caller should see it, with its token counts.
/// The bytes pass through untouched unless Bedrock added its invocation metrics object.
pub fn from_bedrock_response(
    answer: bytes::Bytes,
) -> Result<(bytes::Bytes, Option<crate::request_log::Usage>), ProxyError> {
    const METRICS_KEY: &str = "amazon-bedrock-invocationMetrics";
    let unreadable = || ProxyError::Upstream("bedrock's answer is not a JSON object".into());
    let mut value: Value = serde_json::from_slice(&answer).map_err(|_| unreadable())?;
    let object = value.as_object_mut().ok_or_else(unreadable)?;
    let usage = object.get("usage").map(crate::request_log::Usage::from_anthropic);
    if object.remove(METRICS_KEY).is_none() {
        return Ok((answer, usage));
    }
    let bytes = serde_json::to_vec(&value).map_err(|_| unreadable())?;
    Ok((bytes::Bytes::from(bytes), usage))
}

fn clean_tool(tool: &mut Value) {
    let Value::Object(fields) = tool else { return };
    let custom = matches!(fields.get("type").and_then(Value::as_str), None | Some("custom"));
    if custom {
        for key in REJECTED_CUSTOM_TOOL_KEYS {
            if fields.remove(*key).is_some() {
                tracing::debug!(field = key, "dropping tool field bedrock does not accept");
            }
        }
    }
    if let Some(cc) = fields.get_mut("cache_control") {
        clean_cache_control_object(cc);
    }
}

/// Walks content blocks (and nested tool_result content) trimming every `cache_control`.
fn clean_cache_control(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(clean_cache_control),
        Value::Object(fields) => {
            if let Some(cc) = fields.get_mut("cache_control") {
                clean_cache_control_object(cc);
            }
            if let Some(content) = fields.get_mut("content") {
                clean_cache_control(content);
            }
        }
        _ => {}
    }
}

fn clean_cache_control_object(cc: &mut Value) {
    if let Value::Object(fields) = cc {
        fields.retain(|k, _| {
            let keep = CACHE_CONTROL_KEYS.contains(&k.as_str());
            if !keep {
                tracing::debug!(field = %k, "dropping cache_control field bedrock does not accept");
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bedrock_body(body: Value, header_betas: &[&str]) -> Value {
        let req = parse_request(body.to_string().as_bytes(), Endpoint::Messages).unwrap();
        let filter = BetaFilter::default();
        let betas = filter.filter(header_betas.iter().copied());
        serde_json::from_slice(&to_bedrock_body(&req, betas, &filter)).unwrap()
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
    fn unknown_beta_flags_are_dropped_and_order_is_kept() {
        let out = bedrock_body(
            minimal(),
            &[
                "claude-code-20250219,interleaved-thinking-2025-05-14",
                "oauth-2025-04-20, fine-grained-tool-streaming-2025-05-14,prompt-caching-scope-2026-01-05",
                "context-management-2025-06-27,interleaved-thinking-2025-05-14",
            ],
        );
        assert_eq!(
            out["anthropic_beta"],
            json!([
                "interleaved-thinking-2025-05-14",
                "fine-grained-tool-streaming-2025-05-14",
                "context-management-2025-06-27"
            ])
        );
    }

    #[test]
    fn extra_beta_flags_extend_the_table() {
        let filter = BetaFilter::new(vec!["new-flag-2027-01-01".into()]);
        assert_eq!(
            filter.filter(["new-flag-2027-01-01,other"]),
            vec!["new-flag-2027-01-01"]
        );
    }

    #[test]
    fn fields_bedrock_rejects_are_dropped() {
        let mut body = minimal();
        for k in [
            "mcp_servers",
            "service_tier",
            "container",
            "speed",
            "output_format",
            "brand_new_field",
        ] {
            body[k] = json!("x");
        }
        body["metadata"] = json!({"user_id": "u"});
        body["thinking"] = json!({"type": "adaptive"});
        body["output_config"] = json!({"effort": "high"});
        body["context_management"] = json!({"edits": []});
        let out = bedrock_body(body, &[]);
        let mut keys: Vec<&str> = out.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "anthropic_version",
                "context_management",
                "max_tokens",
                "messages",
                "metadata",
                "output_config",
                "thinking"
            ]
        );
        assert_eq!(out["thinking"], json!({"type": "adaptive"}));
    }

    #[test]
    fn tool_fields_and_cache_control_extras_are_dropped() {
        let mut body = minimal();
        body["tools"] = json!([
            {"name": "a", "input_schema": {"type": "object"}, "defer_loading": true, "eager_input_streaming": true,
             "cache_control": {"type": "ephemeral", "ttl": "1h", "scope": "global"}},
            {"type": "web_search_20250305", "name": "web_search", "defer_loading": true}
        ]);
        body["system"] = json!([{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "scope": "x"}}]);
        body["messages"] = json!([{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "r", "cache_control": {"type": "ephemeral", "scope": "y"}}]},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
        ]}]);
        let out = bedrock_body(body, &[]);
        assert_eq!(
            out["tools"][0],
            json!({"name": "a", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral", "ttl": "1h"}})
        );
        // Server tools keep their own fields.
        assert_eq!(out["tools"][1]["defer_loading"], json!(true));
        assert_eq!(out["system"][0]["cache_control"], json!({"type": "ephemeral"}));
        assert_eq!(
            out["messages"][0]["content"][0]["content"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );
        assert_eq!(out["messages"][0]["content"][1]["source"]["data"], "AAAA");
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
    //! Bedrock is always a JSON object with the required version.
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
            let filter = BetaFilter::default();
            let header_betas = filter.filter(betas.iter().map(String::as_str));
            let out: Value = serde_json::from_slice(&to_bedrock_body(&request, header_betas, &filter)).unwrap();
            let out = out.as_object().unwrap();
            prop_assert_eq!(&out["anthropic_version"], BEDROCK_ANTHROPIC_VERSION);
            prop_assert!(out.keys().all(|k| BEDROCK_FIELDS.contains(&k.as_str())));
            if let Some(flags) = out.get("anthropic_beta") {
                prop_assert!(flags.as_array().unwrap().iter().all(|f| BEDROCK_BETA_FLAGS.contains(&f.as_str().unwrap())));
            }
        }
    }
}
