use super::*;
use serde_json::json;

/// A model outside Claude Code's eager-streaming list.
const SONNET_4_5: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// Claude Code 2.1.332 never sends these to Bedrock (first party or Mantle only).
const FIRST_PARTY_ONLY_BETAS: &[&str] = &[
    "per-turn-control-2026-07-01",
    "mid-conversation-tool-changes-2026-07-01",
    "context-management-2025-06-27",
    "prompt-caching-scope-2026-01-05",
    "tool-provenance-2026-10-26",
    "cache-diagnosis-2026-04-07",
    "oauth-2025-04-20",
];

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

fn check_as(body: &Value, model: &str, header: &[&str]) -> Result<(), BedrockError> {
    let model = model_id(model).expect("a resolvable model id");
    let header_betas: Vec<String> = header.iter().map(|flag| (*flag).to_owned()).collect();
    invoke_body(
        body,
        Context {
            model: &model,
            header_betas: &header_betas,
        },
    )
}

fn check(body: &Value) -> Result<(), BedrockError> {
    check_as(body, SONNET_4_5, &[])
}

fn message_as(body: &Value, model: &str, header: &[&str]) -> String {
    check_as(body, model, header)
        .expect_err("body should be rejected")
        .message
}

fn message_of(body: &Value) -> String {
    message_as(body, SONNET_4_5, &[])
}

fn custom_tool(extra: Value) -> Value {
    let mut tool = json!({ "name": "lookup", "description": "d", "input_schema": { "type": "object" } });
    for (key, value) in extra.as_object().expect("object").clone() {
        tool[key] = value;
    }
    json!([tool])
}

#[test]
fn every_captured_bedrock_request_is_accepted() {
    let rules = rules().expect("captures load");
    assert!(!rules.captures.is_empty());
    for capture in &rules.captures {
        let header: Vec<String> = capture.beta_header.as_deref().map(beta_flags).unwrap_or_default();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        assert_eq!(
            check_as(&capture.body, &capture.model_id, &header),
            Ok(()),
            "{}",
            capture.file.display()
        );
    }
}

#[test]
fn keys_seen_only_in_captures_are_accepted() {
    // AWS does not document these; Claude Code sent them to the real Bedrock.
    let rules = rules().expect("captures load");
    for key in ["thinking", "metadata", "output_config"] {
        assert!(!AWS_BODY_KEYS.contains(&key));
        assert!(rules.shape.top_level_keys.contains(key), "{key}");
    }
    assert_eq!(check(&with("output_config", json!({ "effort": "medium" }))), Ok(()));
}

#[test]
fn a_new_capture_widens_the_rules() {
    let body = json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 1,
        "new_field": 1,
        "anthropic_beta": ["new-beta-2099-01-01"],
        "messages": [{ "role": "user", "content": "x", "new_message_field": 1 }],
        "tools": [{ "name": "t", "input_schema": {}, "new_tool_field": 1 }]
    });
    let capture = Capture {
        file: "synthetic.json".into(),
        model_id: SONNET_4_5.to_owned(),
        beta_header: Some("new-header-beta-2099-01-01".to_owned()),
        body: body.clone(),
    };
    let model = model_id(SONNET_4_5).expect("model");
    let header = vec!["new-header-beta-2099-01-01".to_owned()];
    let context = Context {
        model: &model,
        header_betas: &header,
    };

    assert_eq!(Rules::learn(vec![capture]).check(&body, context), Ok(()));
    assert_eq!(
        Rules::learn(Vec::new()).check(&body, context),
        Err(extra_input("new_field"))
    );
}

#[test]
fn top_level_keys_neither_captured_nor_documented_are_extra_inputs() {
    for key in [
        "context_management",
        "model",
        "stream",
        "mcp_servers",
        "service_tier",
        "container",
        "speed",
        "output_format",
        "diagnostics",
    ] {
        assert_eq!(
            message_of(&with(key, json!(true))),
            format!("{key}: Extra inputs are not permitted")
        );
    }
}

#[test]
fn documented_top_level_keys_are_accepted() {
    let mut body = minimal();
    body["temperature"] = json!(0.5);
    body["top_p"] = json!(0.9);
    body["top_k"] = json!(5);
    body["stop_sequences"] = json!(["END"]);
    body["system"] = json!("terse");
    body["tool_choice"] = json!({ "type": "auto" });
    body["tools"] = custom_tool(json!({}));
    assert_eq!(check(&body), Ok(()));
}

#[test]
fn message_keys_other_than_role_and_content_are_extra_inputs() {
    let messages = json!([
        { "role": "user", "content": "hi" },
        { "role": "assistant", "content": "ok", "output_config": { "effort": "low" } }
    ]);
    assert_eq!(
        message_of(&with("messages", messages)),
        "messages.1.output_config: Extra inputs are not permitted"
    );
}

#[test]
fn user_assistant_and_system_roles_are_accepted() {
    let messages = json!([
        { "role": "user", "content": "hi" },
        { "role": "assistant", "content": "ok" },
        { "role": "system", "content": [{ "type": "text", "text": "note" }] },
        { "role": "user", "content": "go on" }
    ]);
    assert_eq!(check(&with("messages", messages)), Ok(()));
    assert_eq!(
        message_of(&with("messages", json!([{ "role": "tool", "content": "x" }]))),
        "messages.0.role: Input should be 'user', 'assistant' or 'system'"
    );
    assert_eq!(
        message_of(&with("messages", json!([{ "content": "x" }]))),
        "messages.0.role: Field required"
    );
    assert_eq!(
        message_of(&with("messages", json!([{ "role": "user" }]))),
        "messages.0.content: Field required"
    );
}

#[test]
fn body_betas_must_come_from_captures_claude_code_or_aws() {
    let mut known: Vec<&str> = CLAUDE_CODE_BODY_BETAS.to_vec();
    known.extend(AWS_BETAS);
    assert_eq!(check(&with("anthropic_beta", json!(known))), Ok(()));
    // Header-only flags are not body flags.
    for refused in [
        "claude-code-20250219",
        "effort-2025-11-24",
        "structured-outputs-2025-12-15",
    ] {
        assert_eq!(
            message_of(&with("anthropic_beta", json!([refused]))),
            "invalid beta flag",
            "{refused}"
        );
    }
    assert_eq!(
        message_of(&with("anthropic_beta", json!("context-1m-2025-08-07"))),
        "invalid beta flag"
    );
    assert_eq!(message_of(&with("anthropic_beta", json!([7]))), "invalid beta flag");
}

#[test]
fn header_betas_may_add_claude_codes_header_flags() {
    let header = [
        "claude-code-20250219",
        "effort-2025-11-24",
        "structured-outputs-2025-12-15",
        "web-search-2025-03-05",
        "thinking-token-count-2026-05-13",
        "context-1m-2025-08-07",
    ];
    assert_eq!(check_as(&minimal(), SONNET_4_5, &header), Ok(()));
    assert_eq!(
        message_as(
            &minimal(),
            SONNET_4_5,
            &["claude-code-20250219", "files-api-2025-04-14"]
        ),
        "invalid beta flag"
    );
}

#[test]
fn first_party_only_betas_are_refused_in_body_and_header() {
    for beta in FIRST_PARTY_ONLY_BETAS {
        assert_eq!(
            message_of(&with("anthropic_beta", json!([beta]))),
            "invalid beta flag",
            "{beta}"
        );
        assert_eq!(
            message_as(&minimal(), SONNET_4_5, &[beta]),
            "invalid beta flag",
            "{beta}"
        );
    }
}

#[test]
fn beta_headers_split_on_commas() {
    assert_eq!(
        beta_flags(" a-1 ,b-2,, c-3 "),
        ["a-1".to_owned(), "b-2".to_owned(), "c-3".to_owned()]
    );
    assert!(beta_flags("").is_empty());
}

#[test]
fn unknown_custom_tool_keys_are_extra_inputs() {
    assert_eq!(
        message_of(&with("tools", custom_tool(json!({ "some_key": 1 })))),
        "tools.0.custom.some_key: Extra inputs are not permitted"
    );
    let documented = json!({
        "type": "custom",
        "strict": true,
        "input_examples": [{}],
        "cache_control": { "type": "ephemeral" }
    });
    assert_eq!(check(&with("tools", custom_tool(documented))), Ok(()));
}

#[test]
fn defer_loading_needs_the_tool_search_beta() {
    let tools = custom_tool(json!({ "defer_loading": true }));
    assert_eq!(
        message_of(&with("tools", tools.clone())),
        "tools.0.custom.defer_loading: Extra inputs are not permitted"
    );
    let mut body = with("tools", tools);
    assert_eq!(check_as(&body, SONNET_4_5, &[TOOL_SEARCH_BETA]), Ok(()));
    body["anthropic_beta"] = json!([TOOL_SEARCH_BETA]);
    assert_eq!(check(&body), Ok(()));
}

#[test]
fn eager_input_streaming_only_for_claude_codes_models() {
    let body = with("tools", custom_tool(json!({ "eager_input_streaming": true })));
    for model in [
        "us.anthropic.claude-opus-5-5",
        "global.anthropic.claude-sonnet-4-6",
        "anthropic.claude-sonnet-5",
        "eu.anthropic.claude-opus-4-7",
        "us.anthropic.claude-opus-4-8",
        "us.anthropic.claude-opus-5",
        "us.anthropic.claude-sonnet-5-5",
        "us.anthropic.claude-fable-5",
        "us.anthropic.claude-fable-5-2",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-fable-5-1",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-4-8",
    ] {
        assert_eq!(check_as(&body, model, &[]), Ok(()), "{model}");
    }
    for model in [
        SONNET_4_5,
        "us.anthropic.claude-opus-4-6-v1",
        "us.anthropic.claude-haiku-5-5",
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "us.anthropic.claude-fable-4",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
    ] {
        assert_eq!(
            message_as(&body, model, &[]),
            "tools.0.custom.eager_input_streaming: Extra inputs are not permitted",
            "{model}"
        );
    }
}

#[test]
fn model_families_drop_prefix_version_and_date() {
    assert_eq!(model_family("anthropic.claude-opus-5-5"), Some("opus-5-5"));
    assert_eq!(model_family("anthropic.claude-opus-4-6-v1"), Some("opus-4-6"));
    assert_eq!(
        model_family("anthropic.claude-sonnet-4-5-20250929-v1:0"),
        Some("sonnet-4-5")
    );
    assert_eq!(model_family("anthropic.claude-3-haiku-20240307-v1:0"), Some("3-haiku"));
    assert_eq!(model_family("abc123"), None);
}

#[test]
fn typed_server_tools_pass_unchecked() {
    let tools = json!([
        { "type": "tool_search_tool_regex_20251119", "name": "tool_search", "anything": 1 },
        { "type": "bash_20250124", "name": "bash", "defer_loading": true, "eager_input_streaming": true }
    ]);
    assert_eq!(check(&with("tools", tools)), Ok(()));
}

#[test]
fn tool_reference_blocks_need_the_tool_search_beta() {
    let messages = json!([
        { "role": "user", "content": "find a tool" },
        { "role": "assistant", "content": [{ "type": "tool_use", "id": "t1", "name": "ToolSearch", "input": {} }] },
        { "role": "user", "content": [{
            "type": "tool_result", "tool_use_id": "t1",
            "content": [{ "type": "tool_reference", "tool_name": "Write" }]
        }] }
    ]);
    let body = with("messages", messages);
    assert_eq!(
        message_of(&body),
        "messages.2.content.0.content.0: Input tag 'tool_reference' found using 'type' does not match any of the expected tags: 'text', 'image', 'search_result', 'document'"
    );
    assert_eq!(check_as(&body, SONNET_4_5, &[TOOL_SEARCH_BETA]), Ok(()));
    let mut with_beta = body;
    with_beta["anthropic_beta"] = json!([TOOL_SEARCH_BETA]);
    assert_eq!(check(&with_beta), Ok(()));
}

#[test]
fn assistant_thinking_blocks_need_a_signature() {
    let messages = |thinking: Value| {
        json!([
            { "role": "user", "content": "think" },
            { "role": "assistant", "content": [thinking, { "type": "text", "text": "done" }] },
            { "role": "user", "content": "more" }
        ])
    };
    assert_eq!(
        message_of(&with(
            "messages",
            messages(json!({ "type": "thinking", "thinking": "hmm" }))
        )),
        "messages.1.content.0.thinking.signature: Field required"
    );
    assert_eq!(
        message_of(&with(
            "messages",
            messages(json!({ "type": "thinking", "thinking": "hmm", "signature": null }))
        )),
        "messages.1.content.0.thinking.signature: Input should be a valid string"
    );
    let signed = json!({ "type": "thinking", "thinking": "hmm", "signature": "c2ln" });
    assert_eq!(check(&with("messages", messages(signed))), Ok(()));
}

#[test]
fn cache_control_takes_only_type_and_ttl() {
    let ok = json!([{ "type": "text", "text": "s", "cache_control": { "type": "ephemeral", "ttl": "1h" } }]);
    assert_eq!(check(&with("system", ok)), Ok(()));
    let scoped = json!({ "type": "ephemeral", "scope": "global" });
    let in_content = json!([{ "role": "user", "content": [
        { "type": "text", "text": "a" },
        { "type": "text", "text": "b" },
        { "type": "text", "text": "c", "cache_control": scoped }
    ] }]);
    assert_eq!(
        message_of(&with("messages", in_content)),
        "messages.0.content.2.cache_control.scope: Extra inputs are not permitted"
    );
    let nested = json!([{ "role": "user", "content": [{
        "type": "tool_result", "tool_use_id": "t",
        "content": [{ "type": "text", "text": "r", "cache_control": scoped }]
    }] }]);
    assert_eq!(
        message_of(&with("messages", nested)),
        "messages.0.content.0.content.0.cache_control.scope: Extra inputs are not permitted"
    );
    let tools = custom_tool(json!({ "cache_control": scoped }));
    assert_eq!(
        message_of(&with("tools", tools)),
        "tools.0.cache_control.scope: Extra inputs are not permitted"
    );
    // A property named cache_control inside a schema is data, not a cache marker.
    let schema = custom_tool(json!({ "input_schema": { "cache_control": { "scope": 1 } } }));
    assert_eq!(check(&with("tools", schema)), Ok(()));
}

#[test]
fn anthropic_version_max_tokens_and_messages_are_required() {
    let mut body = minimal();
    body.as_object_mut().map(|b| b.remove("anthropic_version"));
    assert_eq!(message_of(&body), "anthropic_version: Field required");
    assert_eq!(
        message_of(&with("anthropic_version", json!("2023-06-01"))),
        "anthropic_version: Input should be 'bedrock-2023-05-31'"
    );
    assert_eq!(
        message_of(&with("max_tokens", json!(0))),
        "max_tokens: Input should be greater than or equal to 1"
    );
    assert_eq!(
        message_of(&with("max_tokens", json!("9"))),
        "max_tokens: Input should be a valid integer"
    );
    assert_eq!(
        message_of(&with("messages", json!([]))),
        "messages: List should have at least 1 item after validation, not 0"
    );
    let mut body = minimal();
    body.as_object_mut().map(|b| b.remove("messages"));
    assert_eq!(message_of(&body), "messages: Field required");
}

#[test]
fn runtime_counts_base_ids_of_older_models_only() {
    for counted in [
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-sonnet-4-6",
        "anthropic.claude-opus-4-6-v1",
        "anthropic.claude-haiku-4-5-20251001-v1:0",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-6",
    ] {
        assert!(
            runtime_counts_tokens(&model_id(counted).expect("resolves")),
            "{counted}"
        );
    }
    for refused in [
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "global.anthropic.claude-sonnet-4-6",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6",
        "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/abc123",
        "anthropic.claude-opus-4-7",
        "anthropic.claude-opus-4-8",
        "anthropic.claude-opus-5",
        "anthropic.claude-opus-5-5",
        "anthropic.claude-sonnet-5",
        "anthropic.claude-sonnet-5-5",
        "anthropic.claude-haiku-5-5",
        "anthropic.claude-fable-5",
        "anthropic.claude-fable-5-2",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-5-5",
    ] {
        assert!(
            !runtime_counts_tokens(&model_id(refused).expect("resolves")),
            "{refused}"
        );
    }
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
