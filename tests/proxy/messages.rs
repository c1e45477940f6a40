//! Requests: what reaches Bedrock, and what the caller gets for bad input or unknown models.

use super::*;

#[tokio::test]
async fn a_message_is_rewritten_for_bedrock_and_returned_as_bedrock_answers() {
    let h = harness(&[]).await;
    let reply = post(&h.app, "/v1/messages?beta=true", &message("hello", false)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.headers["request-id"].to_str().unwrap().starts_with("req_"));
    let answer = reply.json();
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["content"][0]["type"], "text");
    assert!(answer.get("amazon-bedrock-invocationMetrics").is_none());

    let seen = last_request(&h);
    assert_eq!(seen["operation"], "invoke");
    assert_eq!(seen["model_id"], "us.anthropic.claude-sonnet-4-5-20250929-v1:0");
    assert_eq!(seen["body"]["anthropic_version"], "bedrock-2023-05-31");
    assert!(seen["body"].get("model").is_none() && seen["body"].get("stream").is_none());
}

#[tokio::test]
async fn a_non_claude_model_is_a_404_that_says_how_to_map_it() {
    let h = harness(&[]).await;
    let mut body = message("hi", false);
    body["model"] = json!("gpt-4o");
    let reply = post(&h.app, "/v1/messages", &body).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_type(), "not_found_error");
    let msg = reply.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("gpt-4o") && msg.contains("MODEL_MAP"), "{msg}");
    assert!(h.emulator.requests().is_empty());
}

#[tokio::test]
async fn model_map_and_new_models_reach_bedrock_under_the_right_id() {
    let h = harness(&[
        ("MODEL_MAP", r#"{"gpt-4o":"claude-haiku-4-5"}"#),
        ("INFERENCE_PROFILE", "global"),
    ])
    .await;
    for (asked, want) in [
        ("gpt-4o", "global.anthropic.claude-haiku-4-5-20251001-v1:0"),
        ("claude-opus-4-8", "global.anthropic.claude-opus-4-8"),
        ("claude-sonnet-5", "global.anthropic.claude-sonnet-5"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc",
        ),
    ] {
        let mut body = message("hi", false);
        body["model"] = json!(asked);
        let reply = post(&h.app, "/v1/messages", &body).await;
        assert_eq!(reply.status, 200, "{asked}: {}", reply.text());
        assert_eq!(last_request(&h)["model_id"], want);
    }
}

#[tokio::test]
async fn malformed_requests_are_400s_in_anthropic_shape() {
    let h = harness(&[("MAX_BODY_BYTES", "2000")]).await;
    let bodies: &[&[u8]] = &[
        b"{oops",
        b"[]",
        b"\xff\xfe\xfd",
        br#"{"model": 1, "max_tokens": 1, "messages": []}"#,
        br#"{"model": "claude-sonnet-4-5", "max_tokens": 1}"#,
    ];
    for body in bodies {
        let req = request("POST", "/v1/messages", Some(&json!({})))
            .body(Body::from(body.to_vec()))
            .unwrap();
        let reply = send(&h.app, req).await;
        assert_eq!(reply.status, 400, "{:?}", String::from_utf8_lossy(body));
        assert_eq!(reply.error_type(), "invalid_request_error");
    }
    let req = request("POST", "/v1/messages", Some(&json!({})))
        .header("x-padding", "p".repeat(13 * 1024))
        .body(Body::from(message("hi", false).to_string()))
        .unwrap();
    let reply = send(&h.app, req).await;
    assert_eq!(reply.status, 431);
    assert_eq!(reply.error_type(), "request_too_large");
    // Missing or odd content types are no reason to refuse well-formed JSON.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded; charset=🙂"),
    ] {
        let mut req = request("POST", "/v1/messages", None);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let reply = send(&h.app, req.body(Body::from(message("hi", false).to_string())).unwrap()).await;
        assert_eq!(reply.status, 200, "{content_type:?}: {}", reply.text());
    }
    h.emulator.clear();
    let big = message(&"x".repeat(5000), false);
    let reply = post(&h.app, "/v1/messages", &big).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error_type(), "request_too_large");
    // Not found and wrong method, once authenticated.
    let reply = send(
        &h.app,
        request("GET", "/v2/whatever", None).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.error_type().as_str()),
        (404, "not_found_error")
    );
    let reply = send(
        &h.app,
        request("GET", "/v1/messages", None).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, 405);
    reply.error_type();
    assert!(h.emulator.requests().is_empty());
}

#[tokio::test]
async fn first_party_only_fields_and_flags_never_reach_bedrock() {
    let h = harness(&[]).await;
    let fixture: Value = serde_json::from_str(include_str!("../data/first_party_extras_request.json")).unwrap();
    let betas = "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14,prompt-caching-scope-2026-01-05,context-management-2025-06-27,mid-conversation-system-2026-02-01,thinking-token-count-2026-03-01";
    assert_eq!(betas.split(',').count(), 8);
    let req = request("POST", "/v1/messages?beta=true", Some(&fixture))
        .header("anthropic-beta", betas)
        .header("x-stainless-lang", "js")
        .header("x-app", "cli")
        .body(Body::from(fixture.to_string()))
        .unwrap();
    let reply = send(&h.app, req).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    parse_sse(&reply.text());
    let seen = h.emulator.requests();
    // `defer_loading` without the tool-search flag is refused by Bedrock: healed once.
    let statuses: Vec<&Value> = seen.iter().map(|r| &r["status"]).collect();
    assert_eq!(statuses, [&json!(400), &json!(200)]);
    let sent = &seen[1];
    assert_eq!(sent["headers"]["anthropic-beta"], "claude-code-20250219");
    let seen = sent["body"].clone();
    assert_eq!(
        seen["anthropic_beta"],
        json!([
            "interleaved-thinking-2025-05-14",
            "fine-grained-tool-streaming-2025-05-14"
        ])
    );
    for kept in ["output_config", "metadata", "thinking", "tool_choice", "temperature"] {
        assert_eq!(seen[kept], fixture[kept], "{kept} must pass through untouched");
    }
    for dropped in [
        "mcp_servers",
        "service_tier",
        "speed",
        "stream",
        "model",
        "context_management",
    ] {
        assert!(seen.get(dropped).is_none(), "{dropped} must not reach bedrock");
    }
    assert_eq!(seen["tools"][0], fixture["tools"][0]);
    assert!(seen["tools"][1].get("defer_loading").is_none());
    // Claude Code sends eager_input_streaming only for newer models than Sonnet 4.5.
    assert!(seen["tools"][2].get("eager_input_streaming").is_none());
    assert_eq!(seen["tools"][2]["cache_control"], json!({"type": "ephemeral"}));
    assert_eq!(seen["system"][0]["cache_control"], json!({"type": "ephemeral"}));
    assert_eq!(
        seen["messages"][0]["content"][1]["cache_control"],
        json!({"type": "ephemeral"})
    );
    // The lesson holds: the same request goes out right the first time.
    h.emulator.clear();
    let req = request("POST", "/v1/messages?beta=true", Some(&fixture))
        .header("anthropic-beta", betas)
        .body(Body::from(fixture.to_string()))
        .unwrap();
    assert_eq!(send(&h.app, req).await.status, 200);
    assert_eq!(h.emulator.requests().len(), 1);
}

#[tokio::test]
async fn thinking_and_tool_use_stream_through() {
    let h = harness(&[]).await;
    let mut body = message("emulator:thinking emulator:tool_use", true);
    body["tools"] = json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
    let reply = post(&h.app, "/v1/messages", &body).await;
    let events = parse_sse(&reply.text());
    let delta_types: Vec<&str> = events.iter().filter_map(|(_, d)| d["delta"]["type"].as_str()).collect();
    for t in ["thinking_delta", "signature_delta", "text_delta", "input_json_delta"] {
        assert!(delta_types.contains(&t), "{t} missing from {delta_types:?}");
    }
}
