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
    let answer = from_bedrock_response(plain.clone()).unwrap();
    assert_eq!(answer.body, plain);
    assert_eq!(answer.usage.unwrap().output, 4);
    assert!(!answer.guardrail_intervened);
    let with_metrics =
        bytes::Bytes::from_static(br#"{"id":"m","amazon-bedrock-invocationMetrics":{"inputTokenCount":1}}"#);
    let answer = from_bedrock_response(with_metrics).unwrap();
    assert_eq!(answer.body.as_ref(), br#"{"id":"m"}"#);
    let intervened = bytes::Bytes::from_static(
        br#"{"id":"m","stop_reason":null,"amazon-bedrock-guardrailAction":"INTERVENED","amazon-bedrock-trace":{}}"#,
    );
    let answer = from_bedrock_response(intervened).unwrap();
    assert!(answer.guardrail_intervened);
    assert_eq!(answer.body.as_ref(), br#"{"id":"m","stop_reason":"end_turn"}"#);
    assert!(from_bedrock_response(bytes::Bytes::from_static(b"garbage")).is_err());
}

#[test]
fn count_tokens_bodies_need_no_max_tokens() {
    let body = br#"{"model": "m", "messages": []}"#;
    assert!(parse_request(body, Endpoint::CountTokens).is_ok());
}
