use super::*;
use axum::http::HeaderValue;
use serde_json::json;

const OPUS: &str = "anthropic.claude-opus-5-5";

fn minimal() -> Value {
    json!({
        "model": OPUS,
        "max_tokens": 16,
        "messages": [{ "role": "user", "content": "hi" }]
    })
}

fn with(key: &str, value: Value) -> Value {
    let mut body = minimal();
    body[key] = value;
    body
}

fn check_with(body: &Value, endpoint: Endpoint, header: &[&str]) -> Result<ModelRef, AnthropicError> {
    let header: Vec<String> = header.iter().map(|flag| (*flag).to_owned()).collect();
    rules().expect("captures load").check(body, endpoint, &header)
}

fn accepted(body: &Value) -> bool {
    check_with(body, Endpoint::Messages, &[]).is_ok()
}

fn refusal(body: &Value, header: &[&str]) -> (u16, String, String) {
    let error = check_with(body, Endpoint::Messages, header).expect_err("refused");
    (error.status.as_u16(), error.error_type, error.message)
}

fn invalid(message: &str) -> (u16, String, String) {
    (400, "invalid_request_error".to_owned(), message.to_owned())
}

fn signed_headers(authorization: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_str(authorization).expect("ascii"));
    headers.insert("host", HeaderValue::from_static("bedrock-mantle.us-east-1.api.aws"));
    headers.insert("x-amz-date", HeaderValue::from_static("20250101T000000Z"));
    headers
}

const SIGNED: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock-mantle/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";

#[test]
fn every_captured_mantle_request_is_accepted() {
    let rules = rules().expect("captures load");
    assert!(!rules.captures.is_empty());
    for capture in &rules.captures {
        let header = capture.beta_header.as_deref().map(beta_flags).unwrap_or_default();
        let model = rules.check(&capture.body, Endpoint::Messages, &header);
        assert_eq!(
            model.map(|model| model.model),
            Ok(capture.body["model"].as_str().unwrap_or_default().to_owned()),
            "{}",
            capture.file.display()
        );
    }
}

#[test]
fn documented_first_party_keys_are_accepted() {
    let mut body = minimal();
    for (key, value) in [
        ("system", json!("terse")),
        ("metadata", json!({ "user_id": "u" })),
        ("stop_sequences", json!(["END"])),
        ("stream", json!(true)),
        ("temperature", json!(0.5)),
        ("top_p", json!(0.9)),
        ("top_k", json!(5)),
        ("tool_choice", json!({ "type": "auto" })),
        ("thinking", json!({ "type": "adaptive" })),
        ("output_config", json!({ "effort": "low" })),
        ("context_management", json!({ "edits": [] })),
        ("service_tier", json!("auto")),
    ] {
        body[key] = value;
    }
    assert!(accepted(&body), "{:?}", check_with(&body, Endpoint::Messages, &[]));
}

#[test]
fn bedrock_only_and_unsupported_keys_are_extra_inputs() {
    for key in [
        "anthropic_version",
        "anthropic_beta",
        "mcp_servers",
        "container",
        "output_format",
        "speed",
        "diagnostics",
    ] {
        assert_eq!(
            refusal(&with(key, json!(["x"])), &[]),
            invalid(&format!("{key}: Extra inputs are not permitted"))
        );
    }
}

#[test]
fn message_keys_other_than_role_and_content_are_extra_inputs() {
    let messages = json!([
        { "role": "user", "content": "hi" },
        { "role": "user", "content": "more", "output_config": { "effort": "low" } }
    ]);
    assert_eq!(
        refusal(&with("messages", messages), &[]),
        invalid("messages.1.output_config: Extra inputs are not permitted")
    );
}

#[test]
fn model_max_tokens_and_messages_are_required() {
    let mut body = minimal();
    body.as_object_mut().map(|b| b.remove("model"));
    assert_eq!(refusal(&body, &[]), invalid("model: Field required"));
    let mut body = minimal();
    body.as_object_mut().map(|b| b.remove("max_tokens"));
    assert_eq!(refusal(&body, &[]), invalid("max_tokens: Field required"));
    assert_eq!(
        refusal(&with("messages", json!([])), &[]),
        invalid("messages: List should have at least 1 item after validation, not 0")
    );
}

#[test]
fn model_ids_have_no_region_prefix() {
    for model in [
        "us.anthropic.claude-opus-5-5",
        "global.anthropic.claude-sonnet-5-5",
        "claude-opus-5-5",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-5-5",
        "anthropic.claude-does-not-exist",
    ] {
        assert_eq!(
            refusal(&with("model", json!(model)), &[]),
            (404, "not_found_error".to_owned(), format!("model: {model}")),
            "{model}"
        );
    }
    for model in [
        OPUS,
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-haiku-5-5",
    ] {
        assert!(accepted(&with("model", json!(model))), "{model}");
    }
}

#[test]
fn header_betas_are_captured_claude_codes_or_context_management() {
    let header = [
        "claude-code-20250219",
        "interleaved-thinking-2025-05-14",
        "context-management-2025-06-27",
        "thinking-token-count-2026-05-13",
        "tool-search-tool-2025-10-19",
        "effort-2025-11-24",
        "thinking-binding-controls-2026-08-01",
        "context-1m-2025-08-07",
        "structured-outputs-2025-12-15",
        "afk-mode-2026-01-31",
    ];
    assert!(check_with(&minimal(), Endpoint::Messages, &header).is_ok());
    for refused in [
        "per-turn-control-2026-07-01",
        "mid-conversation-tool-changes-2026-07-01",
        "advanced-tool-use-2025-11-20",
        "prompt-caching-scope-2026-01-05",
        "tool-provenance-2026-10-26",
        "cache-diagnosis-2026-04-07",
        "oauth-2025-04-20",
    ] {
        assert_eq!(
            refusal(&minimal(), &["claude-code-20250219", refused]),
            invalid("invalid beta flag"),
            "{refused}"
        );
    }
}

#[test]
fn defer_loading_and_tool_references_need_the_tool_search_header_beta() {
    let tools = json!([{ "name": "t", "input_schema": { "type": "object" }, "defer_loading": true }]);
    let body = with("tools", tools);
    assert_eq!(
        refusal(&body, &[]),
        invalid("tools.0.custom.defer_loading: Extra inputs are not permitted")
    );
    assert!(check_with(&body, Endpoint::Messages, &[TOOL_SEARCH_BETA]).is_ok());

    let messages = json!([
        { "role": "user", "content": "find" },
        { "role": "assistant", "content": [{ "type": "tool_use", "id": "t1", "name": "ToolSearch", "input": {} }] },
        { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": "t1",
            "content": [{ "type": "tool_reference", "tool_name": "Write" }] }] }
    ]);
    let body = with("messages", messages);
    assert_eq!(
        refusal(&body, &[]),
        invalid("messages.2.content.0.content.0: Input tag 'tool_reference' found using 'type' does not match any of the expected tags: 'text', 'image', 'search_result', 'document'")
    );
    assert!(check_with(&body, Endpoint::Messages, &[TOOL_SEARCH_BETA]).is_ok());
}

#[test]
fn cache_control_takes_type_and_ttl_and_thinking_needs_a_signature() {
    let system = json!([{ "type": "text", "text": "s", "cache_control": { "type": "ephemeral", "ttl": "1h" } }]);
    assert!(accepted(&with("system", system)));
    let scoped = json!([{ "type": "text", "text": "s", "cache_control": { "type": "ephemeral", "scope": "global" } }]);
    assert_eq!(
        refusal(&with("system", scoped), &[]),
        invalid("system.0.cache_control.scope: Extra inputs are not permitted")
    );
    let messages = json!([
        { "role": "user", "content": "think" },
        { "role": "assistant", "content": [{ "type": "thinking", "thinking": "hmm" }] },
        { "role": "user", "content": "more" }
    ]);
    assert_eq!(
        refusal(&with("messages", messages), &[]),
        invalid("messages.1.content.0.thinking.signature: Field required")
    );
}

#[test]
fn count_tokens_takes_no_generation_settings() {
    let mut body = minimal();
    body.as_object_mut().map(|b| b.remove("max_tokens"));
    body["system"] = json!("s");
    body["context_management"] = json!({ "edits": [] });
    assert!(check_with(&body, Endpoint::CountTokens, &[]).is_ok());
    for key in ["max_tokens", "stream", "metadata", "temperature"] {
        let mut refused = body.clone();
        refused[key] = json!(1);
        let error = check_with(&refused, Endpoint::CountTokens, &[]).expect_err("refused");
        assert_eq!(error.message, format!("{key}: Extra inputs are not permitted"));
    }
}

#[test]
fn a_new_capture_widens_the_rules() {
    let body = json!({
        "model": OPUS, "max_tokens": 1, "new_field": 1,
        "messages": [{ "role": "user", "content": "x", "new_message_field": 1 }]
    });
    let capture = MantleCapture {
        file: "synthetic.json".into(),
        path: "/anthropic/v1/messages".to_owned(),
        headers: Vec::new(),
        beta_header: Some("new-beta-2099-01-01".to_owned()),
        body: body.clone(),
    };
    let header = vec!["new-beta-2099-01-01".to_owned()];

    assert!(MantleRules::learn(vec![capture])
        .check(&body, Endpoint::Messages, &header)
        .is_ok());
    assert_eq!(
        MantleRules::learn(Vec::new())
            .check(&body, Endpoint::Messages, &[])
            .map_err(|error| error.message),
        Err("new_field: Extra inputs are not permitted".to_owned())
    );
}

#[test]
fn sigv4_scoped_to_bedrock_mantle_authenticates() {
    assert_eq!(authenticate(&signed_headers(SIGNED)), Ok(()));
}

#[test]
fn other_scopes_and_incomplete_signatures_are_authentication_errors() {
    let message_of = |headers: &HeaderMap| {
        let error = authenticate(headers).expect_err("refused");
        assert_eq!(
            (error.status.as_u16(), error.error_type.as_str()),
            (401, "authentication_error")
        );
        error.message
    };
    let bedrock = SIGNED.replace("/bedrock-mantle/", "/bedrock/");
    assert_eq!(
        message_of(&signed_headers(&bedrock)),
        "Credential should be scoped to correct service: 'bedrock-mantle'. "
    );
    assert!(message_of(&HeaderMap::new()).starts_with("missing signature"));
    assert!(message_of(&signed_headers("Bearer ABSKexample")).starts_with("missing signature"));
    assert_eq!(
        message_of(&signed_headers(&SIGNED.replace("/aws4_request", "/aws4"))),
        "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws4'. "
    );
    assert_eq!(
        message_of(&signed_headers(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock-mantle/aws4_request, Signature=00"
        )),
        "Authorization header requires 'SignedHeaders' parameter."
    );
    let mut undated = signed_headers(SIGNED);
    undated.remove("x-amz-date");
    assert_eq!(
        message_of(&undated),
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    );
    assert_eq!(
        message_of(&signed_headers(&SIGNED.replace("host;x-amz-date", "x-amz-date"))),
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
    );
    assert_eq!(
        message_of(&signed_headers(&SIGNED.replace("host;x-amz-date", "host"))),
        "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization."
    );
    assert!(message_of(&signed_headers(
        &SIGNED.replace("x-amz-date,", "x-amz-date;x-amz-security-token,")
    ))
    .starts_with("The request signature we calculated does not match"));
}

#[test]
fn the_anthropic_version_header_is_required() {
    let mut headers = HeaderMap::new();
    assert_eq!(
        check_version(&headers).map_err(|error| (error.status.as_u16(), error.message)),
        Err((400, "anthropic-version: header is required".to_owned()))
    );
    headers.insert("anthropic-version", HeaderValue::from_static("bedrock-2023-05-31"));
    assert!(check_version(&headers).is_err());
    headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    assert_eq!(check_version(&headers), Ok(()));
}
