//! Bedrock's Anthropic Messages endpoint ("Mantle") on the wire: SigV4 scoped to
//! `bedrock-mantle` (a hand-written header: the emulator checks the scope, not the
//! signature's math), Anthropic SSE answers, Anthropic-shaped errors, and the same
//! directives as the Runtime side.

use std::time::{Duration, Instant};

use bedrock_emulator::mantle;
use serde_json::{json, Value};

use crate::support::*;

async fn expect_refusal(request: &Value, headers: &[(&str, &str)], status: u16, error: Value) {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let exchange = mantle_post(emulator.addr(), MANTLE_MESSAGES, request, headers).await;
    let response = exchange.response;
    assert_eq!(response.status(), status, "{request}");
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().contains_key("x-amzn-requestid"));
    assert_eq!(read_json(response).await, error, "{request}");
    let logged = &emulator.requests()[0];
    assert_eq!(logged["operation"], "mantle-messages");
    assert_eq!(logged["status"], status);
}

async fn expect_invalid(request: &Value, headers: &[(&str, &str)], message: &str) {
    expect_refusal(request, headers, 400, anthropic_error("invalid_request_error", message)).await;
}

#[tokio::test]
async fn every_captured_mantle_request_is_accepted_with_its_headers() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let captures = &mantle::rules().expect("captures load").captures;

    for capture in captures {
        let headers: Vec<(&str, &str)> = capture
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();

        let exchange = mantle_post(emulator.addr(), &capture.path, &capture.body, &headers).await;

        let response = exchange.response;
        assert_eq!(response.status(), 200, "{}", capture.file.display());
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let events = SseReader::new(response).all().await;
        assert_eq!(events[0].data["message"]["model"], capture.body["model"]);
        assert_eq!(names(&events).last(), Some(&"message_stop"));
    }
    let logged = emulator.requests();
    assert_eq!(logged.len(), captures.len());
    for (entry, capture) in logged.iter().zip(captures) {
        assert_eq!(entry["operation"], "mantle-messages");
        assert_eq!(entry["model_id"], capture.body["model"]);
        assert_eq!(entry["path"], capture.path.as_str());
        assert_eq!(entry["body"], capture.body);
        assert_eq!(entry["status"], 200);
        assert_eq!(
            entry["headers"]["anthropic-beta"].as_str(),
            capture.beta_header.as_deref()
        );
    }
}

#[tokio::test]
async fn streamed_answers_are_anthropic_sse_frames() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let exchange = mantle_post(emulator.addr(), MANTLE_MESSAGES, &mantle_body("hi", true), &[VERSION]).await;

    let response = exchange.response;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert!(response.headers().contains_key("x-amzn-requestid"));
    let events = SseReader::new(response).all().await;
    assert_eq!(
        names(&events),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data = data(&events);
    let message = &data[0]["message"];
    assert!(message["id"].as_str().is_some_and(|id| id.starts_with("msg_bdrk_")));
    assert_eq!(message["model"], MANTLE_MODEL);
    assert_eq!(streamed_text(&data), "Hello from the Bedrock emulator.");
    assert_eq!(data[7]["delta"]["stop_reason"], "end_turn");
    // Bedrock Runtime's metrics are not part of the Anthropic stream.
    assert_eq!(data[8], json!({ "type": "message_stop" }));
}

#[tokio::test]
async fn a_single_answer_is_the_anthropic_message() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let exchange = mantle_post(
        emulator.addr(),
        "/anthropic/v1/messages",
        &mantle_body("Say hello, please.", false),
        &[VERSION],
    )
    .await;

    let response = exchange.response;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .is_ok_and(|value| value.starts_with("application/json")));
    assert!(response.headers().contains_key("x-amzn-requestid"));
    let message = read_json(response).await;
    assert_eq!(message["type"], "message");
    assert_eq!(message["model"], MANTLE_MODEL);
    assert_eq!(
        message["content"],
        json!([{ "type": "text", "text": "Hello from the Bedrock emulator." }])
    );
    assert_eq!(message["usage"]["input_tokens"], 4);
    assert_eq!(emulator.requests()[0]["path"], "/anthropic/v1/messages");
}

#[tokio::test]
async fn count_tokens_counts_for_every_model() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    for model in [
        "anthropic.claude-opus-5-5",
        "anthropic.claude-sonnet-5-5",
        "anthropic.claude-haiku-5-5",
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
    ] {
        let request = json!({ "model": model, "messages": [{ "role": "user", "content": "1234567890123456" }] });

        let exchange = mantle_post(emulator.addr(), MANTLE_COUNT_TOKENS, &request, &[VERSION]).await;

        assert_eq!(exchange.response.status(), 200, "{model}");
        assert_eq!(
            read_json(exchange.response).await,
            json!({ "input_tokens": 4 }),
            "{model}"
        );
    }
    let logged = emulator.requests();
    assert!(logged.iter().all(|entry| entry["operation"] == "mantle-count-tokens"));
    assert_eq!(logged[1]["model_id"], "anthropic.claude-sonnet-5-5");
    assert_eq!(logged[1]["status"], 200);
}

#[tokio::test]
async fn count_tokens_refuses_generation_settings_and_takes_the_beta_query() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let mut request = mantle_body("hi", false);
    request.as_object_mut().map(|body| body.remove("stream"));

    let refused = mantle_post(emulator.addr(), MANTLE_COUNT_TOKENS, &request, &[VERSION]).await;
    request.as_object_mut().map(|body| body.remove("max_tokens"));
    let counted = mantle_post(
        emulator.addr(),
        "/anthropic/v1/messages/count_tokens?beta=true",
        &request,
        &[VERSION, ("anthropic-beta", "context-management-2025-06-27")],
    )
    .await;

    assert_eq!(refused.response.status(), 400);
    assert_eq!(
        read_json(refused.response).await,
        anthropic_error("invalid_request_error", "max_tokens: Extra inputs are not permitted")
    );
    assert_eq!(counted.response.status(), 200);
}

#[tokio::test]
async fn requests_must_be_signed_for_bedrock_mantle() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let body = bytes::Bytes::from(mantle_body("hi", true).to_string());
    let scoped_to_bedrock = MANTLE_SIGNATURE.replace("/bedrock-mantle/", "/bedrock/");
    let without_host = MANTLE_SIGNATURE.replace("content-type;host;x-amz-date", "content-type;x-amz-date");

    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![VERSION],
            "missing signature: sign the request with SigV4 (AWS4-HMAC-SHA256) for the service 'bedrock-mantle'",
        ),
        (
            vec![VERSION, ("authorization", &scoped_to_bedrock), ("x-amz-date", AMZ_DATE)],
            "Credential should be scoped to correct service: 'bedrock-mantle'. ",
        ),
        (
            vec![VERSION, ("authorization", MANTLE_SIGNATURE)],
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ),
        (
            vec![VERSION, ("authorization", &without_host), ("x-amz-date", AMZ_DATE)],
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ),
    ];
    for (headers, message) in cases {
        let exchange = send_with_headers(emulator.addr(), "POST", MANTLE_MESSAGES, body.clone(), false, &headers).await;

        assert_eq!(exchange.response.status(), 401, "{message}");
        assert_eq!(
            read_json(exchange.response).await,
            anthropic_error("authentication_error", message)
        );
    }
    // Runtime's signature does not open Mantle either.
    let runtime_signed = send(emulator.addr(), "POST", MANTLE_COUNT_TOKENS, body, true).await;
    assert_eq!(runtime_signed.response.status(), 401);
    assert!(emulator.requests().iter().all(|entry| entry["status"] == 401));
}

#[tokio::test]
async fn the_anthropic_version_header_is_required() {
    expect_invalid(&mantle_body("hi", true), &[], "anthropic-version: header is required").await;
}

#[tokio::test]
async fn mantle_refuses_what_claude_code_strips_for_it() {
    let mut request = mantle_body("hi", true);
    request["messages"] = json!([
        { "role": "user", "content": "hi" },
        { "role": "user", "content": "more", "output_config": { "effort": "low" } }
    ]);
    expect_invalid(
        &request,
        &[VERSION],
        "messages.1.output_config: Extra inputs are not permitted",
    )
    .await;

    for beta in [
        "per-turn-control-2026-07-01",
        "mid-conversation-tool-changes-2026-07-01",
        "advanced-tool-use-2025-11-20",
        "prompt-caching-scope-2026-01-05",
        "tool-provenance-2026-10-26",
        "cache-diagnosis-2026-04-07",
    ] {
        let header = format!("claude-code-20250219,{beta}");
        expect_invalid(
            &mantle_body("hi", true),
            &[VERSION, ("anthropic-beta", &header)],
            "invalid beta flag",
        )
        .await;
    }
}

#[tokio::test]
async fn mantle_refuses_bedrock_body_fields_and_missing_features() {
    for (key, value) in [
        ("anthropic_version", json!("bedrock-2023-05-31")),
        ("anthropic_beta", json!(["context-1m-2025-08-07"])),
        ("mcp_servers", json!([])),
        ("container", json!("c")),
        ("output_format", json!({ "type": "json_schema" })),
    ] {
        let mut request = mantle_body("hi", true);
        request[key] = value;
        expect_invalid(&request, &[VERSION], &format!("{key}: Extra inputs are not permitted")).await;
    }
}

#[tokio::test]
async fn tool_search_cache_control_and_thinking_rules_hold_on_mantle() {
    let mut deferred = mantle_body("hi", true);
    deferred["tools"] = json!([{ "name": "t", "input_schema": { "type": "object" }, "defer_loading": true }]);
    expect_invalid(
        &deferred,
        &[VERSION],
        "tools.0.custom.defer_loading: Extra inputs are not permitted",
    )
    .await;
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let with_beta = mantle_post(
        emulator.addr(),
        MANTLE_MESSAGES,
        &deferred,
        &[VERSION, ("anthropic-beta", "tool-search-tool-2025-10-19")],
    )
    .await;
    assert_eq!(with_beta.response.status(), 200);

    let mut scoped = mantle_body("hi", true);
    scoped["system"] =
        json!([{ "type": "text", "text": "s", "cache_control": { "type": "ephemeral", "scope": "global" } }]);
    expect_invalid(
        &scoped,
        &[VERSION],
        "system.0.cache_control.scope: Extra inputs are not permitted",
    )
    .await;

    let mut unsigned = mantle_body("hi", true);
    unsigned["messages"] = json!([
        { "role": "user", "content": "think" },
        { "role": "assistant", "content": [{ "type": "thinking", "thinking": "hmm" }] },
        { "role": "user", "content": "more" }
    ]);
    expect_invalid(
        &unsigned,
        &[VERSION],
        "messages.1.content.0.thinking.signature: Field required",
    )
    .await;
}

#[tokio::test]
async fn profile_ids_are_not_mantle_models() {
    for model in ["us.anthropic.claude-opus-5-5", "anthropic.claude-does-not-exist"] {
        let mut request = mantle_body("hi", true);
        request["model"] = json!(model);
        expect_refusal(
            &request,
            &[VERSION],
            404,
            anthropic_error("not_found_error", &format!("model: {model}")),
        )
        .await;
    }
}

#[tokio::test]
async fn unknown_mantle_paths_answer_in_anthropics_shape() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let models = send(
        emulator.addr(),
        "GET",
        "/anthropic/v1/models",
        bytes::Bytes::new(),
        false,
    )
    .await;

    assert_eq!(models.response.status(), 404);
    let body = read_json(models.response).await;
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn error_directives_map_to_anthropic_statuses_and_types() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    for (name, status, error_type) in [
        ("ThrottlingException", 429, "rate_limit_error"),
        ("ServiceQuotaExceededException", 429, "rate_limit_error"),
        ("ServiceUnavailableException", 529, "overloaded_error"),
        ("ModelNotReadyException", 529, "overloaded_error"),
        ("ValidationException", 400, "invalid_request_error"),
        ("AccessDeniedException", 403, "permission_error"),
        ("ResourceNotFoundException", 404, "not_found_error"),
        ("InternalServerException", 500, "api_error"),
        ("ModelErrorException", 500, "api_error"),
        ("ModelTimeoutException", 504, "timeout_error"),
        ("overloaded_error", 529, "overloaded_error"),
    ] {
        for stream in [true, false] {
            let request = mantle_body(&format!("emulator:error={name}"), stream);

            let exchange = mantle_post(emulator.addr(), MANTLE_MESSAGES, &request, &[VERSION]).await;

            let response = exchange.response;
            assert_eq!(response.status(), status, "{name}");
            let body = read_json(response).await;
            assert_eq!(body["type"], "error");
            assert_eq!(body["error"]["type"], error_type, "{name}");
            assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }
    let counted = mantle_post(
        emulator.addr(),
        MANTLE_COUNT_TOKENS,
        &json!({ "model": MANTLE_MODEL, "messages": [{ "role": "user", "content": "emulator:error=ThrottlingException" }] }),
        &[VERSION],
    )
    .await;
    assert_eq!(counted.response.status(), 429);
}

#[tokio::test]
async fn fail_first_fails_then_succeeds() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let request = mantle_body("emulator:fail_first=2:ServiceUnavailableException:mantle-retry", true);

    let mut statuses = Vec::new();
    for _ in 0..3 {
        let exchange = mantle_post(emulator.addr(), MANTLE_MESSAGES, &request, &[VERSION]).await;
        statuses.push(exchange.response.status().as_u16());
    }

    assert_eq!(statuses, [529, 529, 200]);
}

#[tokio::test]
async fn stream_exception_after_ends_with_an_error_event() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let request = mantle_body("emulator:stream_exception_after=3:throttlingException", true);

    let exchange = mantle_post(emulator.addr(), MANTLE_MESSAGES, &request, &[VERSION]).await;

    assert_eq!(exchange.response.status(), 200);
    let events = SseReader::new(exchange.response).all().await;
    // Three planned events (the ping rides with message_start), then the error.
    assert_eq!(
        names(&events),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(
        events[4].data,
        anthropic_error(
            "rate_limit_error",
            "Too many requests, please wait before trying again."
        )
    );
}

#[tokio::test]
async fn cut_after_truncates_and_garbage_after_breaks_the_json() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let cut = mantle_post(
        emulator.addr(),
        MANTLE_MESSAGES,
        &mantle_body("emulator:cut_after=2", true),
        &[VERSION],
    )
    .await;
    let garbage = mantle_post(
        emulator.addr(),
        MANTLE_MESSAGES,
        &mantle_body("emulator:garbage_after=1", true),
        &[VERSION],
    )
    .await;

    let mut reader = SseReader::new(cut.response);
    for expected in ["message_start", "ping", "content_block_start"] {
        let event = reader.next().await.expect("whole frames first").expect("an event");
        assert_eq!(event.name, expected);
    }
    assert!(reader.next().await.is_err(), "the body is cut");
    assert_eq!(
        emulator.stats()["streams_cancelled"],
        0,
        "a deliberate cut is not a cancel"
    );
    let mut reader = SseReader::new(garbage.response);
    assert_eq!(
        reader.next().await.expect("frame").expect("event").name,
        "message_start"
    );
    assert_eq!(reader.next().await.expect("frame").expect("event").name, "ping");
    let broken = reader.next_raw().await.expect("the garbage frame");
    let data = broken
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .expect("data line");
    assert!(serde_json::from_str::<Value>(data).is_err(), "{broken:?}");
}

#[tokio::test]
async fn empty_stream_sends_the_sse_headers_and_no_event() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let exchange = mantle_post(
        emulator.addr(),
        MANTLE_MESSAGES,
        &mantle_body("emulator:empty_stream", true),
        &[VERSION],
    )
    .await;

    let response = exchange.response;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    assert!(SseReader::new(response).all().await.is_empty());
    assert_eq!(emulator.requests()[0]["status"], 200);
}

#[tokio::test]
async fn content_directives_shape_the_stream() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let mut request = mantle_body("emulator:thinking emulator:tool_use emulator:chunks=5", true);
    request["tools"] = json!([{ "name": "lookup_weather", "input_schema": { "type": "object" } }]);

    let exchange = mantle_post(emulator.addr(), MANTLE_MESSAGES, &request, &[VERSION]).await;

    let events = data(&SseReader::new(exchange.response).all().await);
    let starts: Vec<&Value> = events
        .iter()
        .filter(|event| event["type"] == "content_block_start")
        .map(|event| &event["content_block"]["type"])
        .collect();
    assert_eq!(starts, ["thinking", "text", "tool_use"]);
    assert!(events.iter().any(|event| event["delta"]["type"] == "signature_delta"));
    let text_deltas = events
        .iter()
        .filter(|event| event["delta"]["type"] == "text_delta")
        .count();
    assert_eq!(text_deltas, 5);
    let tool = events
        .iter()
        .find(|event| event["content_block"]["type"] == "tool_use")
        .expect("tool_use block");
    assert_eq!(tool["content_block"]["name"], "lookup_weather");
    let input: String = events
        .iter()
        .filter_map(|event| event["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&input).expect("json"),
        json!({ "location": "Paris", "unit": "celsius" })
    );
    let stop = events
        .iter()
        .find(|event| event["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(stop["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn echo_answers_with_the_received_body() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let mut request = mantle_body("emulator:echo", true);
    request["context_management"] = json!({ "edits": [{ "type": "clear_thinking_20251015", "keep": "all" }] });

    let exchange = mantle_post(
        emulator.addr(),
        MANTLE_MESSAGES,
        &request,
        &[VERSION, ("anthropic-beta", "context-management-2025-06-27")],
    )
    .await;

    let events = data(&SseReader::new(exchange.response).all().await);
    assert_eq!(
        serde_json::from_str::<Value>(&streamed_text(&events)).expect("json text"),
        request
    );
}

#[tokio::test]
async fn timing_directives_space_the_events() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let started = Instant::now();

    let exchange = mantle_post(
        emulator.addr(),
        MANTLE_MESSAGES,
        &mantle_body(
            "emulator:first_delay_ms=300 emulator:delay_ms=50 emulator:stamp emulator:chunks=3",
            true,
        ),
        &[VERSION],
    )
    .await;

    let headers_after = started.elapsed();
    let mut reader = SseReader::new(exchange.response);
    reader.next().await.expect("frame").expect("message_start");
    let first_event_after = started.elapsed();
    let mut stamps = Vec::new();
    while let Some(event) = reader.next().await.expect("well-formed stream") {
        let stamp = event.data["delta"]["text"]
            .as_str()
            .and_then(|text| text.strip_prefix("t=")?.strip_suffix(';')?.parse::<u128>().ok());
        stamps.extend(stamp);
    }
    assert!(
        headers_after < Duration::from_millis(200),
        "headers after {headers_after:?}"
    );
    assert!(
        first_event_after >= Duration::from_millis(300),
        "first event after {first_event_after:?}"
    );
    assert_eq!(stamps.len(), 3);
    for pair in stamps.windows(2) {
        assert!(pair[1] - pair[0] >= 45_000, "{pair:?}");
    }
}

#[tokio::test]
async fn hang_never_answers() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let pending = tokio::time::timeout(
        Duration::from_millis(300),
        mantle_post(
            emulator.addr(),
            MANTLE_MESSAGES,
            &mantle_body("emulator:hang", true),
            &[VERSION],
        ),
    )
    .await;

    assert!(pending.is_err(), "no response head expected");
    assert_eq!(emulator.requests()[0]["status"], Value::Null);
    assert_eq!(emulator.requests()[0]["operation"], "mantle-messages");
}

#[tokio::test]
async fn close_ends_the_connection_without_a_response_byte() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let addr = emulator.addr();
    let body = mantle_body("emulator:close", true).to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {MANTLE_MESSAGES} HTTP/1.1\r\nhost: {addr}\r\nauthorization: {MANTLE_SIGNATURE}\r\nx-amz-date: {AMZ_DATE}\r\nanthropic-version: 2023-06-01\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );

    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body.as_bytes()).await.expect("write body");
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut received))
        .await
        .expect("the emulator closes the connection")
        .expect("a clean close, not a reset");

    assert_eq!(received, b"");
    assert_eq!(emulator.requests()[0]["status"], Value::Null);
}
