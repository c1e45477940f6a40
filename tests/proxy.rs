//! The proxy's router against the Bedrock emulator, through the real aws-sdk-bedrockruntime
//! client: request rewriting, SSE framing and timing, errors, auth, retries, count_tokens,
//! models, pings and cancellation.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use common::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

fn last_request(h: &Harness) -> Value {
    h.emulator.requests().pop().expect("the emulator received a request")
}

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
async fn a_stream_is_reframed_as_anthropic_sse() {
    let h = harness(&[]).await;
    let reply = post(&h.app, "/v1/messages", &message("hi emulator:chunks=4", true)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.headers["content-type"], "text/event-stream; charset=utf-8");
    assert!(reply.headers.contains_key("request-id"));
    let text = reply.text();
    assert!(!text.contains("amazon-bedrock-invocationMetrics"));
    let events = parse_sse(&text);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    assert_eq!(names.iter().filter(|n| **n == "content_block_delta").count(), 4);
    assert_eq!(last_request(&h)["operation"], "invoke-with-response-stream");
}

/// Microseconds since the epoch, the emulator's `stamp` clock.
fn unix_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros()
}

#[tokio::test]
async fn each_event_reaches_the_caller_before_bedrock_sends_the_next() {
    // Ordering, not speed: with `stamp`, each text delta says when the emulator sent it, and
    // the next comes 0.6 s later. Every event must reach the caller before the emulator even
    // produced the next one; a proxy that batched or buffered would deliver them together.
    let h = harness(&[]).await;
    let req = request("POST", "/v1/messages", Some(&json!({})))
        .body(Body::from(
            message("emulator:chunks=4 emulator:delay_ms=600 emulator:stamp", true).to_string(),
        ))
        .unwrap();
    let response = h.app.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received: Vec<(Value, u128)> = Vec::new();
    while let Some(frame) = body.frame().await {
        let at = unix_micros();
        let data = frame.unwrap().into_data().unwrap();
        for (_, event) in parse_sse(std::str::from_utf8(&data).unwrap()) {
            received.push((event, at));
        }
    }
    let sent_at = |event: &Value| -> Option<u128> {
        let text = event["delta"]["text"].as_str()?;
        text.strip_prefix("t=")?.strip_suffix(';')?.parse().ok()
    };
    let deltas: Vec<(u128, u128)> = received
        .iter()
        .filter_map(|(event, at)| Some((sent_at(event)?, *at)))
        .collect();
    assert_eq!(deltas.len(), 4, "{received:?}");
    let (first, first_at) = &received[0];
    assert_eq!(first["type"], "message_start");
    assert!(
        *first_at < deltas[0].0,
        "message_start reached the caller only after the first delta was sent"
    );
    for (i, pair) in deltas.windows(2).enumerate() {
        let ((_, got), (next_sent, _)) = (pair[0], pair[1]);
        assert!(
            got < next_sent,
            "delta {i} reached the caller only after delta {} was sent: batched ({deltas:?})",
            i + 1
        );
    }
    assert_eq!(received.last().unwrap().0["type"], "message_stop");
}

#[tokio::test]
async fn bedrock_errors_map_to_anthropic_statuses() {
    let h = harness(&[("UPSTREAM_MAX_ATTEMPTS", "1")]).await;
    let cases = [
        ("ThrottlingException", 429, "rate_limit_error"),
        ("ServiceUnavailableException", 529, "overloaded_error"),
        ("AccessDeniedException", 403, "permission_error"),
        ("ValidationException", 400, "invalid_request_error"),
        ("InternalServerException", 500, "api_error"),
    ];
    for stream in [false, true] {
        for (name, status, kind) in cases {
            let reply = post(
                &h.app,
                "/v1/messages",
                &message(&format!("emulator:error={name}"), stream),
            )
            .await;
            assert_eq!(
                reply.status.as_u16(),
                status,
                "{name} stream={stream}: {}",
                reply.text()
            );
            assert_eq!(reply.error_type(), kind);
            assert!(reply.headers.contains_key("request-id"));
            assert_eq!(
                reply.headers.contains_key("retry-after"),
                status == 429 || status == 529,
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn bedrock_validation_messages_reach_the_caller() {
    let h = harness(&[]).await;
    let mut body = message("hi", false);
    body["model"] = json!("us.anthropic.claude-does-not-exist-v1:0");
    let reply = post(&h.app, "/v1/messages", &body).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_type(), "invalid_request_error");
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("model identifier is invalid"));
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
async fn an_error_mid_stream_becomes_an_error_event() {
    let h = harness(&[]).await;
    for prompt in [
        "emulator:stream_exception_after=2:modelStreamErrorException",
        "emulator:stream_exception_after=2:throttlingException",
        "emulator:cut_after=2",
        "emulator:garbage_after=2",
    ] {
        let reply = tokio::time::timeout(
            Duration::from_secs(20),
            post(&h.app, "/v1/messages", &message(prompt, true)),
        )
        .await
        .unwrap_or_else(|_| panic!("{prompt}: the stream hung"));
        assert_eq!(reply.status, 200, "{prompt}");
        let events = parse_sse(&reply.text());
        let (last, data) = events.last().unwrap();
        assert_eq!(last, "error", "{prompt}: {events:?}");
        assert_eq!(data["type"], "error");
        assert!(data["error"]["type"].is_string());
        assert_eq!(events.iter().filter(|(n, _)| n == "error").count(), 1, "{prompt}");
        assert!(events.iter().all(|(n, _)| n != "message_stop"), "{prompt}");
    }
}

#[tokio::test]
async fn no_request_without_a_valid_token_reaches_bedrock() {
    let h = harness(&[]).await;
    for auth in [
        None,
        Some(("authorization", "Bearer wrong")),
        Some(("x-api-key", "wrong")),
        Some(("authorization", TOKEN)),
    ] {
        for (method, uri) in [
            ("POST", "/v1/messages"),
            ("POST", "/v1/messages/count_tokens"),
            ("GET", "/v1/models"),
            ("GET", "/v1/models/claude-sonnet-4-5"),
            ("GET", "/nope"),
        ] {
            let mut req = axum::http::Request::builder().method(method).uri(uri);
            if let Some((k, v)) = auth {
                req = req.header(k, v);
            }
            let reply = send(&h.app, req.body(Body::from(message("hi", false).to_string())).unwrap()).await;
            assert_eq!(reply.status, 401, "{method} {uri} {auth:?}");
            assert_eq!(reply.error_type(), "authentication_error");
            assert!(reply.headers.contains_key("request-id"));
        }
    }
    assert!(h.emulator.requests().is_empty());
    // Both headers work.
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/messages")
        .header("x-api-key", TOKEN)
        .body(Body::from(message("hi", false).to_string()))
        .unwrap();
    assert_eq!(send(&h.app, req).await.status, 200);
    // Health needs no token.
    let health = send(&h.app, axum::http::Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(health.status, 200);
    assert!(health.headers.contains_key("request-id"));
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
async fn throttling_is_retried_before_the_first_byte() {
    let h = harness(&[]).await;
    let reply = post(
        &h.app,
        "/v1/messages",
        &message("emulator:fail_first=2:ThrottlingException:k1", true),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(h.emulator.requests().len(), 3);
    h.emulator.clear();

    let reply = post(
        &h.app,
        "/v1/messages",
        &message("emulator:error=ThrottlingException", false),
    )
    .await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.headers["retry-after"], "2");
    assert_eq!(h.emulator.requests().len(), 3, "default is 3 attempts in total");
    h.emulator.clear();

    // Errors in a stream's first event are retried too.
    let reply = post(
        &h.app,
        "/v1/messages",
        &message("emulator:stream_exception_after=0:serviceUnavailableException", true),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 529, "{}", reply.text());
    assert_eq!(h.emulator.requests().len(), 3);
}

#[tokio::test]
async fn nothing_is_retried_after_bytes_reach_the_caller() {
    let h = harness(&[]).await;
    let reply = post(
        &h.app,
        "/v1/messages",
        &message("emulator:stream_exception_after=2:throttlingException", true),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(h.emulator.requests().len(), 1);
    assert_eq!(
        parse_sse(&reply.text()).last().unwrap().1["error"]["type"],
        "rate_limit_error"
    );
}

#[tokio::test]
async fn first_party_only_fields_and_flags_never_reach_bedrock() {
    let h = harness(&[]).await;
    let fixture: Value = serde_json::from_str(include_str!("data/first_party_extras_request.json")).unwrap();
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
async fn count_tokens_falls_back_to_the_base_model_id() {
    let h = harness(&[]).await;
    let body =
        json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "count these words please"}]});
    let reply = post(&h.app, "/v1/messages/count_tokens", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.json()["input_tokens"].as_u64().unwrap() >= 1);
    let seen = h.emulator.requests();
    let ids: Vec<&str> = seen.iter().map(|r| r["model_id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-5-20250929-v1:0"
        ]
    );
    assert_eq!(seen[1]["operation"], "count-tokens");
}

#[tokio::test]
async fn models_are_listed_and_paged_in_anthropics_shape() {
    let h = harness(&[("MODEL_MAP", r#"{"team-default":"claude-sonnet-4-5"}"#)]).await;
    let list = send(
        &h.app,
        request("GET", "/v1/models?limit=3", None).body(Body::empty()).unwrap(),
    )
    .await
    .json();
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
    assert_eq!(list["has_more"], true);
    assert_eq!(list["first_id"], list["data"][0]["id"]);
    assert_eq!(list["data"][0]["type"], "model");
    for key in ["id", "display_name", "created_at"] {
        assert!(list["data"][0][key].is_string());
    }
    let after = list["last_id"].as_str().unwrap();
    let next = send(
        &h.app,
        request("GET", &format!("/v1/models?limit=1000&after_id={after}"), None)
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(next["has_more"], false);
    assert_eq!(next["last_id"], "team-default");
    let before = send(
        &h.app,
        request("GET", &format!("/v1/models?before_id={after}"), None)
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .json();
    assert_eq!(before["data"].as_array().unwrap().len(), 2);

    let one = send(
        &h.app,
        request("GET", "/v1/models/claude-haiku-4-5", None)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["id"], "claude-haiku-4-5-20251001");
    let missing = send(
        &h.app,
        request("GET", "/v1/models/gpt-4o", None).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_type(), "not_found_error");
}

#[tokio::test]
async fn silence_before_the_first_event_is_filled_with_pings() {
    let h = harness(&[("PING_INTERVAL_MS", "300")]).await;
    // Six intervals of silence; two pings is a generous floor for a loaded machine.
    let reply = post(&h.app, "/v1/messages", &message("emulator:first_delay_ms=2000", true)).await;
    assert_eq!(reply.status, 200);
    let events = parse_sse(&reply.text());
    let first_delta = events.iter().position(|(n, _)| n == "message_start").unwrap();
    let pings = events[..first_delta].iter().filter(|(n, _)| n == "ping").count();
    assert!(pings >= 2, "{events:?}");
    assert!(reply.text().contains("event: ping\ndata: {\"type\": \"ping\"}\n\n"));
}

#[tokio::test]
async fn the_default_ping_interval_is_ten_seconds() {
    let h = harness(&[]).await;
    assert_eq!(h.state.config.ping_interval, Duration::from_secs(10));
}

#[tokio::test]
async fn a_caller_that_leaves_mid_stream_closes_bedrocks_connection() {
    let h = harness(&[]).await;
    let req = request("POST", "/v1/messages", Some(&json!({})))
        .body(Body::from(
            message("emulator:chunks=200 emulator:delay_ms=100", true).to_string(),
        ))
        .unwrap();
    let response = h.app.clone().oneshot(req).await.unwrap();
    let mut body = response.into_body();
    for _ in 0..3 {
        body.frame().await.unwrap().unwrap();
    }
    assert_eq!(h.emulator.stats()["open_streams"], 1);
    // The server drops the body when the caller's connection goes away.
    let left = Instant::now();
    drop(body);
    loop {
        if h.emulator.stats()["streams_cancelled"] == 1 {
            break;
        }
        // The emulator sees the close as soon as hyper does, within milliseconds; the bound only
        // keeps a broken build from waiting out the 20 s stream, with room for a loaded machine.
        assert!(
            left.elapsed() < Duration::from_secs(10),
            "bedrock's stream still open: {}",
            h.emulator.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.emulator.stats()["open_streams"], 0);
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

#[tokio::test]
async fn cors_headers_only_locally_and_only_when_asked() {
    let preflight = || {
        axum::http::Request::builder()
            .method("OPTIONS")
            .uri("/v1/messages")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .body(Body::empty())
            .unwrap()
    };
    let local = harness(&[("CORS_ALLOW_ORIGINS", "https://app.example")]).await;
    let reply = send(&local.app, preflight()).await;
    assert_eq!(reply.headers["access-control-allow-origin"], "https://app.example");

    let lambda = harness(&[
        ("CORS_ALLOW_ORIGINS", "*"),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
    ])
    .await;
    let reply = send(&lambda.app, preflight()).await;
    assert!(
        reply.headers.keys().all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        reply.headers
    );
    let reply = post(&lambda.app, "/v1/messages", &message("hi", false)).await;
    assert!(reply.headers.keys().all(|k| !k.as_str().starts_with("access-control-")));
}

// Hardening: path tricks, panics, timeouts.

#[tokio::test]
async fn path_tricks_without_a_token_never_reach_bedrock() {
    let h = harness(&[]).await;
    let paths = [
        "/v1/messages",
        "/v1/messages/",
        "//v1/messages",
        "/v1//messages",
        "/V1/Messages",
        "/v1/./messages",
        "/v1/../v1/messages",
        "/v1/messages%2F",
        "/v1%2Fmessages",
        "/v1/messages%00",
        "/health/../v1/messages",
        "/health/%2e%2e/v1/messages",
        "/./health/../v1/messages",
        "/health/",
        "/HEALTH",
        "/health;/v1/messages",
        "/v1/messages/count_tokens/",
        "/v1/models/../messages",
        "/v1/models/claude-sonnet-4-5/../../messages",
        "/v1/messages?beta=true",
        "/health?next=/v1/messages",
    ];
    let methods = ["GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"];
    for path in paths {
        for method in methods {
            let req = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json")
                .body(Body::from(message("hi", false).to_string()))
                .unwrap();
            let reply = send(&h.app, req).await;
            let is_health = path.split('?').next() == Some("/health") && matches!(method, "GET" | "HEAD");
            if is_health {
                assert_eq!(reply.status, 200, "{method} {path}");
            } else {
                assert_eq!(reply.status, 401, "{method} {path}: {}", reply.text());
            }
        }
    }
    assert!(h.emulator.requests().is_empty(), "{:?}", h.emulator.requests());
}

async fn boom() -> &'static str {
    panic!("deliberate test panic")
}

#[tokio::test]
async fn a_panicking_handler_gets_a_500_and_the_process_keeps_serving() {
    use axum::routing::get;
    let h = harness(&[]).await;
    let routes = axum::Router::new()
        .route("/boom", get(boom))
        .route("/fine", get(|| async { "fine" }));
    let app = bedrock_anthropic_proxy::http::with_layers(routes, h.state.clone());
    let reply = send(&app, request("GET", "/boom", None).body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.error_type(), "api_error");
    assert!(!reply.text().contains("deliberate"), "panic details must not leak");
    assert!(reply.headers.contains_key("request-id"));
    let reply = send(&app, request("GET", "/fine", None).body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn bedrock_hanging_before_the_first_byte_times_out_cleanly() {
    let h = harness(&[("UPSTREAM_TIMEOUT_SECONDS", "1")]).await;
    for stream in [false, true] {
        // The emulator never answers; a 504 at all proves the proxy gave up by itself. The
        // bound is only there so that a broken build fails instead of hanging.
        let reply = tokio::time::timeout(
            Duration::from_secs(30),
            post(&h.app, "/v1/messages", &message("emulator:hang", stream)),
        )
        .await
        .expect("the proxy must give up on its own");
        assert_eq!(reply.status, 504, "stream={stream}: {}", reply.text());
        assert_eq!(reply.error_type(), "api_error");
    }
    // Nothing is left running: the emulator's hung responses were abandoned.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.emulator.stats()["open_streams"], 0, "{}", h.emulator.stats());
}

#[tokio::test]
async fn pings_between_events_lose_no_event() {
    // The ping timer fires while the SDK is waiting for the next frame; the wait must resume
    // where it left off.
    let h = harness(&[("PING_INTERVAL_MS", "40")]).await;
    let reply = post(
        &h.app,
        "/v1/messages",
        &message("emulator:chunks=8 emulator:delay_ms=110", true),
    )
    .await;
    let events = parse_sse(&reply.text());
    let deltas: Vec<&str> = events.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert_eq!(deltas.len(), 8, "{events:?}");
    // A ping between two deltas is a wait that was interrupted and resumed: how many there
    // are depends on the machine's load, that there is one does not.
    let first_delta = events.iter().position(|(_, d)| d["delta"]["text"].is_string()).unwrap();
    let last_delta = events
        .iter()
        .rposition(|(_, d)| d["delta"]["text"].is_string())
        .unwrap();
    assert!(
        events[first_delta..last_delta].iter().any(|(n, _)| n == "ping"),
        "{events:?}"
    );
    assert_eq!(events.last().unwrap().0, "message_stop");
}

#[tokio::test]
async fn bedrock_going_silent_mid_stream_ends_the_stream_with_an_error() {
    let h = harness(&[("UPSTREAM_TIMEOUT_SECONDS", "1"), ("PING_INTERVAL_MS", "200")]).await;
    // 60 s between events: only the idle timeout (1 s) can end this stream within the bound,
    // which is generous for a loaded machine.
    let reply = tokio::time::timeout(
        Duration::from_secs(30),
        post(
            &h.app,
            "/v1/messages",
            &message("emulator:chunks=3 emulator:delay_ms=60000", true),
        ),
    )
    .await
    .expect("a silent upstream must end the stream at UPSTREAM_TIMEOUT_SECONDS");
    let events = parse_sse(&reply.text());
    assert!(events.iter().any(|(n, _)| n == "ping"), "{events:?}");
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "error");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(data["error"]["message"]
        .as_str()
        .unwrap()
        .contains("UPSTREAM_TIMEOUT_SECONDS"));
    // The hung upstream stream was closed, not left running.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.emulator.stats()["open_streams"], 0, "{}", h.emulator.stats());
}

// Reliability where the proxy meets AWS (issue 11).

/// The caller's error message for an SDK failure: one sentence, none of the SDK's Debug output.
fn assert_readable(message: &str) {
    assert!(message.len() < 300, "{} bytes: {message}", message.len());
    for internal in ["DispatchFailure", "ConnectorError", "Some(", "source:", "{", "\n"] {
        assert!(!message.contains(internal), "{internal:?} in {message}");
    }
}

#[tokio::test]
async fn a_connection_closed_before_any_answer_is_retried_streamed_or_not() {
    let h = harness(&[]).await;
    for (stream, key) in [(false, "dead-invoke"), (true, "dead-stream")] {
        h.emulator.clear();
        let prompt = format!("emulator:fail_first=1:close:{key}");
        let reply = post(&h.app, "/v1/messages", &message(&prompt, stream)).await;
        assert_eq!(reply.status, 200, "stream={stream}: {}", reply.text());
        if stream {
            assert_eq!(parse_sse(&reply.text()).last().unwrap().0, "message_stop");
        } else {
            assert_eq!(reply.json()["type"], "message");
        }
        let statuses: Vec<Value> = h.emulator.requests().iter().map(|r| r["status"].clone()).collect();
        // The first connection was closed without a response (logged with no status).
        assert_eq!(statuses, [Value::Null, json!(200)], "stream={stream}");
    }
}

#[tokio::test]
async fn a_connection_that_keeps_closing_is_a_short_api_error_with_the_chain_in_the_log() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let h = harness(&[]).await;
    for stream in [false, true] {
        h.emulator.clear();
        let reply = post(&h.app, "/v1/messages", &message("emulator:close", stream)).await;
        assert_eq!(reply.status, 500, "stream={stream}: {}", reply.text());
        assert_eq!(reply.error_type(), "api_error");
        assert!(!reply.headers.contains_key("retry-after"));
        let text = reply.json()["error"]["message"].as_str().unwrap().to_string();
        assert_eq!(text, "could not reach Bedrock: the connection closed before any answer");
        assert_readable(&text);
        assert_eq!(h.emulator.requests().len(), 3, "the default attempt budget");
        let line = logs.request_line(reply.headers["request-id"].to_str().unwrap());
        assert_eq!(line["outcome"], "connection_failed", "{line}");
        assert!(
            line["error"].as_str().unwrap().contains("dispatch failure"),
            "the SDK's chain belongs in the log: {line}"
        );
    }
}

/// Credentials that fail to load the way the default chain fails when nothing is configured.
#[derive(Debug)]
struct NoCredentials;

impl aws_credential_types::provider::ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(
            aws_credential_types::provider::error::CredentialsError::not_loaded(
                "no providers in chain provided credentials",
            ),
        ))
    }
}

#[tokio::test]
async fn missing_aws_credentials_are_one_sentence_for_the_caller_and_the_chain_for_the_log() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let emulator = bedrock_emulator::spawn().await.expect("emulator starts");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(emulator.url())
        .credentials_provider(NoCredentials)
        .load()
        .await;
    let h = harness_with(emulator, &sdk, &[]).await;
    for stream in [false, true] {
        let reply = post(&h.app, "/v1/messages", &message("hi", stream)).await;
        assert_eq!(reply.status, 500, "{}", reply.text());
        assert_eq!(reply.error_type(), "api_error");
        let text = reply.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            text.starts_with("could not reach Bedrock: no AWS credentials found (set AWS_PROFILE"),
            "{text}"
        );
        assert_readable(&text);
        let line = logs.request_line(reply.headers["request-id"].to_str().unwrap());
        assert!(
            line["error"]
                .as_str()
                .unwrap()
                .contains("no providers in chain provided credentials"),
            "{line}"
        );
    }
    assert!(h.emulator.requests().is_empty(), "nothing unsigned reaches Bedrock");
}

#[tokio::test]
async fn a_stream_that_ends_without_any_event_is_an_api_error_not_a_panic() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let h = harness(&[]).await;
    let reply = post(&h.app, "/v1/messages", &message("emulator:empty_stream", true)).await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert_eq!(reply.error_type(), "api_error");
    assert_eq!(
        reply.json()["error"]["message"],
        "bedrock ended the stream without sending any event"
    );
    // Nothing had reached the caller, so it was tried again like a dead connection.
    assert_eq!(h.emulator.requests().len(), 3);
    let line = logs.request_line(reply.headers["request-id"].to_str().unwrap());
    assert_eq!(line["outcome"], "empty_stream", "{line}");
}

#[tokio::test]
async fn inside_lambda_a_stream_ends_with_an_error_event_before_the_deadline() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let h = harness(&[
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("LAMBDA_DEADLINE_MARGIN_MS", "1000"),
    ])
    .await;
    // A 40 s answer in an invocation with 2.5 s left.
    let req = request("POST", "/v1/messages", Some(&json!({})))
        .extension(lambda_context(Duration::from_millis(2500)))
        .body(Body::from(
            message("emulator:chunks=200 emulator:delay_ms=200", true).to_string(),
        ))
        .unwrap();
    // Generous: the proxy gives up after about 1.5 s; only a proxy ignoring the deadline
    // would still be streaming after 20 s.
    let reply = tokio::time::timeout(Duration::from_secs(20), send(&h.app, req))
        .await
        .expect("the stream must end at the deadline, not run its 40 s");
    assert_eq!(reply.status, 200);
    let events = parse_sse(&reply.text());
    assert!(events.iter().any(|(n, _)| n == "content_block_delta"), "{events:?}");
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "error");
    assert_eq!(data["error"]["type"], "api_error");
    let text = data["error"]["message"].as_str().unwrap();
    assert!(
        text.contains("Lambda invocation's timeout") && text.contains("900 s"),
        "{text}"
    );
    let line = logs.request_line(reply.headers["request-id"].to_str().unwrap());
    assert_eq!(line["outcome"], "deadline", "{line}");
    // Ending the stream closed Bedrock's.
    for _ in 0..100 {
        if h.emulator.stats()["open_streams"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.emulator.stats()["open_streams"], 0, "{}", h.emulator.stats());
}

#[tokio::test]
async fn inside_lambda_a_whole_answer_may_take_until_the_deadline_instead_of_the_fixed_timeout() {
    let h = harness(&[
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("LAMBDA_DEADLINE_MARGIN_MS", "1000"),
        ("UPSTREAM_TIMEOUT_SECONDS", "1"),
    ])
    .await;
    let invocation = |prompt: &str, left: Duration| {
        request("POST", "/v1/messages", Some(&json!({})))
            .extension(lambda_context(left))
            .body(Body::from(message(prompt, false).to_string()))
            .unwrap()
    };
    // 2 s is past UPSTREAM_TIMEOUT_SECONDS but within the invocation's time.
    let reply = send(
        &h.app,
        invocation("emulator:first_delay_ms=2000", Duration::from_secs(30)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Outside Lambda the same answer is cut at UPSTREAM_TIMEOUT_SECONDS.
    let local = post(&h.app, "/v1/messages", &message("emulator:first_delay_ms=2000", false)).await;
    assert_eq!(local.status, 504, "{}", local.text());
    // An answer that would outlast the invocation is given up on before Lambda cuts it.
    let reply = tokio::time::timeout(
        Duration::from_secs(20),
        send(
            &h.app,
            invocation("emulator:first_delay_ms=30000", Duration::from_secs(3)),
        ),
    )
    .await
    .expect("the proxy must give up at the deadline");
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert_eq!(reply.error_type(), "api_error");
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Lambda invocation's timeout"));
}

#[tokio::test]
async fn count_tokens_sends_a_max_tokens_above_the_thinking_budget() {
    let h = harness(&[]).await;
    let body = json!({
        "model": "claude-sonnet-4-5",
        "thinking": {"type": "enabled", "budget_tokens": 4096},
        "messages": [{"role": "user", "content": "count these words please"}]
    });
    let reply = post(&h.app, "/v1/messages/count_tokens", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let counted = h.emulator.requests().pop().unwrap();
    assert_eq!(counted["operation"], "count-tokens");
    assert_eq!(counted["body"]["max_tokens"], 4097, "{counted}");
}

/// A stand-in for Bedrock's CountTokens that refuses every request with `message`, and notes
/// the model IDs it was asked for.
async fn refusing_count_tokens(message: &'static str) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::extract::Path;
    use axum::response::IntoResponse;
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    let app = axum::Router::new().route(
        "/model/{model_id}/count-tokens",
        axum::routing::post(move |Path(model_id): Path<String>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(model_id);
                (
                    axum::http::StatusCode::BAD_REQUEST,
                    [("x-amzn-errortype", "ValidationException")],
                    axum::Json(json!({ "message": message })),
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, asked)
}

#[tokio::test]
async fn count_tokens_retries_the_base_model_id_only_for_bedrocks_refusal_of_the_profile() {
    let (url, asked) = refusing_count_tokens("messages.0.content: Field required").await;
    let emulator = bedrock_emulator::spawn().await.expect("emulator starts");
    let h = harness_with(emulator, &sdk_config(&url).await, &[]).await;
    let body = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]});
    let reply = post(&h.app, "/v1/messages/count_tokens", &body).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.error_type(), "invalid_request_error");
    assert_eq!(reply.json()["error"]["message"], "messages.0.content: Field required");
    assert_eq!(
        *asked.lock().unwrap(),
        ["us.anthropic.claude-sonnet-4-5-20250929-v1:0"],
        "a body error is not a refusal of the profile ID"
    );
}
