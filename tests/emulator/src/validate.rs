//! The checks Bedrock makes before invoking Claude: the model identifier and the
//! InvokeModel body (allowed keys, `anthropic_version`, beta flags, `cache_control`),
//! each failing with Bedrock's 400 `ValidationException` wording.

use serde_json::{Map, Value};

use crate::error::BedrockError;

/// The only `anthropic_version` Bedrock accepts.
pub const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// Cross-region inference profile prefixes, e.g. `us.anthropic.claude-...`.
pub const PROFILE_PREFIXES: &[&str] = &["global", "us", "eu", "apac", "jp", "au"];

const ALLOWED_KEYS: &[&str] = &[
    "anthropic_version",
    "max_tokens",
    "messages",
    "anthropic_beta",
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

const ACCEPTED_BETAS: &[&str] = &[
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

/// Keys Bedrock refuses on custom tools although the first-party API takes them.
const CUSTOM_TOOL_REJECTED_KEYS: &[&str] = &["defer_loading", "eager_input_streaming"];

/// A model identifier Bedrock would resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// The identifier as it arrived in the URI, percent-decoded.
    pub id: String,
    /// The cross-region profile prefix (`us`, `global`, ...) when the id has one.
    pub profile: Option<String>,
    /// The id without profile prefix or ARN, reported as the answer's `model`.
    pub model: String,
}

/// Checks a model identifier the way Bedrock resolves it: `anthropic.claude-*`,
/// `<profile>.anthropic.claude-*`, or a Bedrock ARN of a foundation model or an
/// (application) inference profile.
pub fn model_id(id: &str) -> Result<ModelRef, BedrockError> {
    // Tests use this marker to see the proxy hand Bedrock's message through.
    if id.contains("does-not-exist") {
        return Err(BedrockError::invalid_model());
    }
    if let Some(rest) = id.strip_prefix("arn:") {
        return arn_model(id, rest);
    }
    if id.starts_with("anthropic.claude-") {
        return Ok(ModelRef {
            id: id.to_owned(),
            profile: None,
            model: id.to_owned(),
        });
    }
    match id.split_once('.') {
        Some((prefix, base)) if PROFILE_PREFIXES.contains(&prefix) && base.starts_with("anthropic.claude-") => {
            Ok(ModelRef {
                id: id.to_owned(),
                profile: Some(prefix.to_owned()),
                model: base.to_owned(),
            })
        }
        _ => Err(BedrockError::invalid_model()),
    }
}

/// `arn:<partition>:bedrock:<region>:<account>:<type>/<resource>`; `rest` follows `arn:`.
fn arn_model(id: &str, rest: &str) -> Result<ModelRef, BedrockError> {
    let fields: Vec<&str> = rest.splitn(5, ':').collect();
    let [partition, "bedrock", _region, _account, resource] = fields.as_slice() else {
        return Err(BedrockError::invalid_model());
    };
    if !partition.starts_with("aws") {
        return Err(BedrockError::invalid_model());
    }
    let model = match resource.split_once('/') {
        Some(("foundation-model", base)) if base.starts_with("anthropic.claude-") => base,
        Some(("inference-profile", profile)) => match model_id(profile) {
            Ok(inner) => {
                return Ok(ModelRef {
                    id: id.to_owned(),
                    ..inner
                })
            }
            Err(error) => return Err(error),
        },
        // Application profiles have opaque ids; any non-empty one resolves.
        Some(("application-inference-profile", profile_id)) if !profile_id.is_empty() => profile_id,
        _ => return Err(BedrockError::invalid_model()),
    };
    Ok(ModelRef {
        id: id.to_owned(),
        profile: None,
        model: model.to_owned(),
    })
}

/// Parses and validates an InvokeModel body, returning it as JSON.
pub fn body(bytes: &[u8]) -> Result<Value, BedrockError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|error| {
        BedrockError::validation(format!(
            "Malformed input request: {error}, please reformat your input and try again."
        ))
    })?;
    invoke_body(&value)?;
    Ok(value)
}

/// Validates an already parsed InvokeModel body.
pub fn invoke_body(value: &Value) -> Result<(), BedrockError> {
    let Some(body) = value.as_object() else {
        return Err(BedrockError::validation(
            "Malformed input request: expected type: JSONObject, please reformat your input and try again.",
        ));
    };
    if let Some(key) = body.keys().find(|key| !ALLOWED_KEYS.contains(&key.as_str())) {
        return Err(extra_input(key));
    }
    match body.get("anthropic_version") {
        None => return Err(BedrockError::validation("anthropic_version: Field required")),
        Some(Value::String(version)) if version == ANTHROPIC_VERSION => {}
        Some(_) => {
            return Err(BedrockError::validation(format!(
                "anthropic_version: Input should be '{ANTHROPIC_VERSION}'"
            )))
        }
    }
    match body.get("max_tokens") {
        None => return Err(BedrockError::validation("max_tokens: Field required")),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {}
        Some(Value::Number(n)) if n.is_i64() => {
            return Err(BedrockError::validation(
                "max_tokens: Input should be greater than or equal to 1",
            ))
        }
        Some(_) => return Err(BedrockError::validation("max_tokens: Input should be a valid integer")),
    }
    match body.get("messages") {
        None => return Err(BedrockError::validation("messages: Field required")),
        Some(Value::Array(messages)) if messages.is_empty() => {
            return Err(BedrockError::validation(
                "messages: List should have at least 1 item after validation, not 0",
            ))
        }
        Some(Value::Array(_)) => {}
        Some(_) => return Err(BedrockError::validation("messages: Input should be a valid list")),
    }
    if let Some(betas) = body.get("anthropic_beta") {
        let all_accepted = betas.as_array().is_some_and(|betas| {
            betas
                .iter()
                .all(|beta| beta.as_str().is_some_and(|beta| ACCEPTED_BETAS.contains(&beta)))
        });
        if !all_accepted {
            return Err(BedrockError::validation("invalid beta flag"));
        }
    }
    check_tools(body)?;
    check_cache_controls(body)
}

fn extra_input(path: &str) -> BedrockError {
    BedrockError::validation(format!("{path}: Extra inputs are not permitted"))
}

fn check_tools(body: &Map<String, Value>) -> Result<(), BedrockError> {
    let Some(tools) = body.get("tools").and_then(Value::as_array) else {
        return Ok(());
    };
    for (index, tool) in tools.iter().enumerate() {
        let kind = tool.get("type").and_then(Value::as_str);
        if !matches!(kind, None | Some("custom")) {
            continue;
        }
        if let Some(key) = CUSTOM_TOOL_REJECTED_KEYS.iter().find(|key| tool.get(**key).is_some()) {
            return Err(extra_input(&format!("tools.{index}.custom.{key}")));
        }
    }
    Ok(())
}

/// Walks only the places where content blocks live, so a tool's `input_schema` or a
/// `tool_use` input that happens to have a `cache_control` property is left alone.
fn check_cache_controls(body: &Map<String, Value>) -> Result<(), BedrockError> {
    if let Some(Value::Array(blocks)) = body.get("system") {
        for (index, block) in blocks.iter().enumerate() {
            check_cache_control(block, &format!("system.{index}"))?;
        }
    }
    if let Some(Value::Array(tools)) = body.get("tools") {
        for (index, tool) in tools.iter().enumerate() {
            check_cache_control(tool, &format!("tools.{index}"))?;
        }
    }
    let messages = body.get("messages").and_then(Value::as_array);
    for (m, message) in messages.into_iter().flatten().enumerate() {
        let Some(Value::Array(blocks)) = message.get("content") else {
            continue;
        };
        for (b, block) in blocks.iter().enumerate() {
            let path = format!("messages.{m}.content.{b}");
            check_cache_control(block, &path)?;
            if let Some(Value::Array(inner)) = block.get("content") {
                for (i, inner_block) in inner.iter().enumerate() {
                    check_cache_control(inner_block, &format!("{path}.content.{i}"))?;
                }
            }
        }
    }
    Ok(())
}

fn check_cache_control(block: &Value, path: &str) -> Result<(), BedrockError> {
    let Some(Value::Object(cache_control)) = block.get("cache_control") else {
        return Ok(());
    };
    match cache_control.keys().find(|key| !matches!(key.as_str(), "type" | "ttl")) {
        Some(key) => Err(extra_input(&format!("{path}.cache_control.{key}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 16,
            "messages": [{ "role": "user", "content": "hi" }]
        })
    }

    fn with(key: &str, value: Value) -> Value {
        let mut body = minimal();
        body[key] = value;
        body
    }

    fn message_of(body: &Value) -> String {
        invoke_body(body).expect_err("body should be rejected").message
    }

    #[test]
    fn a_minimal_body_is_accepted() {
        assert_eq!(invoke_body(&minimal()), Ok(()));
    }

    #[test]
    fn first_party_only_keys_are_extra_inputs() {
        for key in [
            "model",
            "stream",
            "mcp_servers",
            "service_tier",
            "container",
            "speed",
            "output_format",
        ] {
            assert_eq!(
                message_of(&with(key, json!(true))),
                format!("{key}: Extra inputs are not permitted")
            );
        }
    }

    #[test]
    fn anthropic_version_max_tokens_and_messages_are_required() {
        let mut body = minimal();
        body.as_object_mut().map(|b| b.remove("anthropic_version"));
        assert_eq!(message_of(&body), "anthropic_version: Field required");
        assert!(message_of(&with("anthropic_version", json!("2023-06-01"))).starts_with("anthropic_version"));
        assert!(message_of(&with("max_tokens", json!(0))).starts_with("max_tokens"));
        assert!(message_of(&with("max_tokens", json!("9"))).starts_with("max_tokens"));
        assert!(message_of(&with("messages", json!([]))).starts_with("messages"));
    }

    #[test]
    fn unknown_beta_flags_fail_the_request() {
        assert_eq!(
            invoke_body(&with("anthropic_beta", json!(["interleaved-thinking-2025-05-14"]))),
            Ok(())
        );
        assert_eq!(
            message_of(&with("anthropic_beta", json!(["claude-code-20250219"]))),
            "invalid beta flag"
        );
        assert_eq!(
            message_of(&with("anthropic_beta", json!("context-1m-2025-08-07"))),
            "invalid beta flag"
        );
    }

    #[test]
    fn custom_tools_may_not_defer_loading() {
        let tools = json!([
            { "type": "bash_20250124", "name": "bash", "defer_loading": true },
            { "name": "get_weather", "input_schema": {}, "eager_input_streaming": true }
        ]);
        assert_eq!(
            message_of(&with("tools", tools)),
            "tools.1.custom.eager_input_streaming: Extra inputs are not permitted"
        );
    }

    #[test]
    fn cache_control_takes_only_type_and_ttl() {
        let ok = json!([{ "type": "text", "text": "s", "cache_control": { "type": "ephemeral", "ttl": "1h" } }]);
        assert_eq!(invoke_body(&with("system", ok)), Ok(()));
        let nested = json!([{ "role": "user", "content": [{
            "type": "tool_result", "tool_use_id": "t",
            "content": [{ "type": "text", "text": "r", "cache_control": { "type": "ephemeral", "scope": "global" } }]
        }] }]);
        assert_eq!(
            message_of(&with("messages", nested)),
            "messages.0.content.0.content.0.cache_control.scope: Extra inputs are not permitted"
        );
    }

    #[test]
    fn model_ids_resolve_like_bedrock() {
        let profiled = model_id("us.anthropic.claude-opus-4-8").expect("profile id");
        assert_eq!(profiled.profile.as_deref(), Some("us"));
        assert_eq!(profiled.model, "anthropic.claude-opus-4-8");
        assert!(model_id("anthropic.claude-3-haiku-20240307-v1:0").is_ok());
        let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-6";
        assert_eq!(model_id(arn).expect("arn").model, "anthropic.claude-sonnet-4-6");
        let foundation = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-6";
        assert_eq!(model_id(foundation).expect("foundation arn").profile, None);
        for bad in [
            "claude-sonnet-4-6",
            "xx.anthropic.claude-x",
            "meta.llama3",
            "us.anthropic.claude-does-not-exist",
        ] {
            assert_eq!(model_id(bad), Err(BedrockError::invalid_model()), "{bad}");
        }
    }
}
