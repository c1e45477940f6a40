//! The emulator on the wire: raw HTTP/1.1 requests, frames decoded with smithy-rs's
//! decoder (this file), the real AWS SDK client against it (`sdk`), Bedrock's
//! Anthropic Messages endpoint with its SSE answers (`mantle`), and Bedrock Guardrails through
//! the SDK (`guardrails`).

mod guardrails;
mod mantle;
mod sdk;
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use support::*;

#[tokio::test]
async fn streamed_chunks_decode_into_anthropic_events_in_order() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let exchange = post(emulator.addr(), MODEL, "invoke-with-response-stream", &body("hi")).await;

    let response = exchange.response;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/vnd.amazon.eventstream");
    assert_eq!(response.headers()["x-amzn-bedrock-content-type"], "application/json");
    assert!(response.headers().contains_key("x-amzn-requestid"));
    let events: Vec<Value> = FrameReader::new(response).all().await.iter().map(chunk_event).collect();
    assert_eq!(
        types(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let message = &events[0]["message"];
    assert!(message["id"].as_str().is_some_and(|id| id.starts_with("msg_bdrk_")));
    assert_eq!(message["model"], "anthropic.claude-sonnet-4-5-20250929-v1:0");
    assert!(message["usage"]["input_tokens"].as_u64() >= Some(1));
    assert_eq!(streamed_text(&events), "Hello from the Bedrock emulator.");
    assert_eq!(events[6]["delta"]["stop_reason"], "end_turn");
    let metrics = &events[7]["amazon-bedrock-invocationMetrics"];
    for key in [
        "inputTokenCount",
        "outputTokenCount",
        "invocationLatency",
        "firstByteLatency",
    ] {
        assert!(metrics[key].is_u64(), "{key} in {metrics}");
    }
    assert_eq!(metrics["outputTokenCount"], events[6]["usage"]["output_tokens"]);
}

#[tokio::test]
async fn chunks_sets_the_number_of_text_deltas() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let exchange = post(
        emulator.addr(),
        MODEL,
        "invoke-with-response-stream",
        &body("emulator:chunks=12"),
    )
    .await;

    let events: Vec<Value> = FrameReader::new(exchange.response)
        .all()
        .await
        .iter()
        .map(chunk_event)
        .collect();
    let deltas = events
        .iter()
        .filter(|event| event["delta"]["type"] == "text_delta")
        .count();
    assert_eq!(deltas, 12);
}

#[tokio::test]
async fn invoke_returns_a_message_with_token_headers() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let request = json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "system": "You are terse.",
        "messages": [{ "role": "user", "content": [{ "type": "text", "text": "Say hello, please." }] }]
    });

    let exchange = post(
        emulator.addr(),
        "anthropic.claude-3-haiku-20240307-v1:0",
        "invoke",
        &request,
    )
    .await;

    let response = exchange.response;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let message = read_json(response).await;
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "anthropic.claude-3-haiku-20240307-v1:0");
    assert_eq!(
        message["content"],
        json!([{ "type": "text", "text": "Hello from the Bedrock emulator." }])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["stop_sequence"], Value::Null);
    // 14 + 18 characters of text, four to a token.
    assert_eq!(message["usage"]["input_tokens"], 8);
    assert_eq!(message["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(headers["x-amzn-bedrock-input-token-count"], "8");
    assert_eq!(
        headers["x-amzn-bedrock-output-token-count"].to_str().ok(),
        message["usage"]["output_tokens"].to_string().as_str().into()
    );
    assert!(headers.contains_key("x-amzn-bedrock-invocation-latency"));
    assert!(headers.contains_key("x-amzn-requestid"));
}

async fn expect_validation(model: &str, operation: &str, request: &Value, message: &str) {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let exchange = post(emulator.addr(), model, operation, request).await;
    let response = exchange.response;
    assert_eq!(response.status(), 400, "{request}");
    let error_type = response.headers()["x-amzn-errortype"].to_str().expect("ascii");
    assert!(error_type.starts_with("ValidationException:http://internal.amazon.com/coral/"));
    assert_eq!(read_json(response).await, json!({ "message": message }));
}

#[tokio::test]
async fn the_stream_key_is_an_extra_input() {
    let mut request = body("hi");
    request["stream"] = json!(true);
    expect_validation(
        MODEL,
        "invoke-with-response-stream",
        &request,
        "stream: Extra inputs are not permitted",
    )
    .await;
    expect_validation(MODEL, "invoke", &request, "stream: Extra inputs are not permitted").await;
}

#[tokio::test]
async fn bedrock_rejects_what_the_first_party_api_takes() {
    let mut request = body("hi");
    request["anthropic_beta"] = json!(["oauth-2025-04-20"]);
    expect_validation(MODEL, "invoke", &request, "invalid beta flag").await;

    let mut request = body("hi");
    request["tools"] = json!([{ "name": "t", "input_schema": { "type": "object" }, "defer_loading": true }]);
    expect_validation(
        MODEL,
        "invoke",
        &request,
        "tools.0.custom.defer_loading: Extra inputs are not permitted",
    )
    .await;

    let mut request = body("hi");
    request["system"] =
        json!([{ "type": "text", "text": "s", "cache_control": { "type": "ephemeral", "scope": "global" } }]);
    expect_validation(
        MODEL,
        "invoke",
        &request,
        "system.0.cache_control.scope: Extra inputs are not permitted",
    )
    .await;

    let mut request = body("hi");
    request["context_management"] = json!({ "edits": [] });
    expect_validation(
        MODEL,
        "invoke",
        &request,
        "context_management: Extra inputs are not permitted",
    )
    .await;

    let mut request = body("hi");
    request["messages"] = json!([
        { "role": "user", "content": "hi" },
        { "role": "assistant", "content": "ok" },
        { "role": "user", "content": "more", "output_config": { "effort": "low" } }
    ]);
    expect_validation(
        MODEL,
        "invoke",
        &request,
        "messages.2.output_config: Extra inputs are not permitted",
    )
    .await;

    let mut request = body("hi");
    request["anthropic_version"] = json!("2023-06-01");
    expect_validation(
        MODEL,
        "invoke",
        &request,
        "anthropic_version: Input should be 'bedrock-2023-05-31'",
    )
    .await;
}

#[tokio::test]
async fn captured_claude_code_requests_are_accepted_with_their_beta_header() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let captures = &bedrock_emulator::validate::rules().expect("captures load").captures;

    for capture in captures {
        let header = capture.beta_header.as_deref().unwrap_or_default();
        let exchange = post_with_headers(
            emulator.addr(),
            &capture.model_id,
            "invoke-with-response-stream",
            &capture.body,
            &[("anthropic-beta", header)],
        )
        .await;

        assert_eq!(exchange.response.status(), 200, "{}", capture.file.display());
        let events = FrameReader::new(exchange.response).all().await;
        assert!(!events.is_empty());
    }
    let logged = emulator.requests();
    assert_eq!(logged.len(), captures.len());
    assert_eq!(
        logged[0]["headers"]["anthropic-beta"].as_str(),
        captures[0].beta_header.as_deref()
    );
}

#[tokio::test]
async fn the_beta_header_is_checked_like_the_body() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let request = body("hi");

    let accepted = post_with_headers(
        emulator.addr(),
        MODEL,
        "invoke",
        &request,
        &[("anthropic-beta", "claude-code-20250219, effort-2025-11-24")],
    )
    .await;
    let refused = post_with_headers(
        emulator.addr(),
        MODEL,
        "invoke",
        &request,
        &[("anthropic-beta", "claude-code-20250219,context-management-2025-06-27")],
    )
    .await;

    assert_eq!(accepted.response.status(), 200);
    assert_eq!(refused.response.status(), 400);
    assert_eq!(
        read_json(refused.response).await,
        json!({ "message": "invalid beta flag" })
    );
}

#[tokio::test]
async fn the_tool_search_beta_in_the_header_allows_defer_loading() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let mut request = body("hi");
    request["tools"] = json!([{ "name": "t", "input_schema": { "type": "object" }, "defer_loading": true }]);

    let exchange = post_with_headers(
        emulator.addr(),
        MODEL,
        "invoke",
        &request,
        &[("anthropic-beta", "tool-search-tool-2025-10-19")],
    )
    .await;

    assert_eq!(exchange.response.status(), 200);
}

#[tokio::test]
async fn unresolvable_model_ids_are_invalid() {
    for model in [
        "claude-sonnet-4-5",
        "us.anthropic.claude-does-not-exist-v1:0",
        "meta.llama3-8b-instruct-v1:0",
    ] {
        expect_validation(
            model,
            "invoke",
            &body("hi"),
            "The provided model identifier is invalid.",
        )
        .await;
    }
}

#[tokio::test]
async fn unsigned_requests_are_denied() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let path = format!("/model/{}/invoke", encode_label(MODEL));

    let exchange = send(
        emulator.addr(),
        "POST",
        &path,
        Bytes::from(body("hi").to_string()),
        false,
    )
    .await;

    let response = exchange.response;
    assert_eq!(response.status(), 403);
    assert!(response.headers()["x-amzn-errortype"]
        .to_str()
        .is_ok_and(|value| value.starts_with("AccessDeniedException:")));
    assert_eq!(read_json(response).await, json!({ "message": "missing signature" }));
}

#[tokio::test]
async fn percent_encoded_arns_resolve() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let arn = "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-sonnet-4-6";

    let exchange = post(emulator.addr(), arn, "invoke", &body("hi")).await;

    assert_eq!(exchange.response.status(), 200);
    assert_eq!(
        read_json(exchange.response).await["model"],
        "anthropic.claude-sonnet-4-6"
    );
    assert_eq!(emulator.requests()[0]["model_id"], arn);
}

fn count_tokens_request(inner: &Value) -> Value {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(inner.to_string());
    json!({ "input": { "invokeModel": { "body": encoded } } })
}

#[tokio::test]
async fn count_tokens_counts_the_inner_body() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let inner = body("1234567890123456");

    let exchange = post(
        emulator.addr(),
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "count-tokens",
        &count_tokens_request(&inner),
    )
    .await;

    assert_eq!(exchange.response.status(), 200);
    assert_eq!(read_json(exchange.response).await, json!({ "inputTokens": 4 }));
    let logged = &emulator.requests()[0];
    assert_eq!(logged["operation"], "count-tokens");
    assert_eq!(logged["body"], inner);
    assert_eq!(logged["status"], 200);
}

#[tokio::test]
async fn count_tokens_refuses_profiles_and_the_models_counted_only_on_mantle() {
    for model in [
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "us.anthropic.claude-sonnet-4-6",
        "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/abc123",
        "anthropic.claude-opus-5-5",
        "anthropic.claude-sonnet-5-5",
        "anthropic.claude-haiku-5-5",
        "anthropic.claude-opus-4-7",
        "anthropic.claude-fable-5-1",
    ] {
        expect_validation(
            model,
            "count-tokens",
            &count_tokens_request(&body("hi")),
            "The provided model doesn't support counting tokens.",
        )
        .await;
    }
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    for model in [
        "anthropic.claude-sonnet-4-6",
        "anthropic.claude-opus-4-6-v1",
        "anthropic.claude-haiku-4-5-20251001-v1:0",
    ] {
        let exchange = post(
            emulator.addr(),
            model,
            "count-tokens",
            &count_tokens_request(&body("hi")),
        )
        .await;
        assert_eq!(exchange.response.status(), 200, "{model}");
    }
}

#[tokio::test]
async fn count_tokens_validates_the_inner_body() {
    let mut inner = body("hi");
    inner["model"] = json!("claude-sonnet-4-5");
    expect_validation(
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "count-tokens",
        &count_tokens_request(&inner),
        "model: Extra inputs are not permitted",
    )
    .await;
}

#[tokio::test]
async fn tool_use_streams_its_input_in_pieces() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let mut request = body("weather? emulator:tool_use");
    request["tools"] = json!([{ "name": "lookup_weather", "input_schema": { "type": "object" } }]);

    let exchange = post(emulator.addr(), MODEL, "invoke-with-response-stream", &request).await;

    let events: Vec<Value> = FrameReader::new(exchange.response)
        .all()
        .await
        .iter()
        .map(chunk_event)
        .collect();
    let start = events
        .iter()
        .find(|event| event["content_block"]["type"] == "tool_use")
        .expect("a tool_use block");
    assert_eq!(start["index"], 1);
    assert_eq!(start["content_block"]["name"], "lookup_weather");
    assert!(start["content_block"]["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("toolu_bdrk_")));
    let pieces: Vec<&str> = events
        .iter()
        .filter(|event| event["delta"]["type"] == "input_json_delta")
        .filter_map(|event| event["delta"]["partial_json"].as_str())
        .collect();
    assert!(pieces.len() > 1);
    let input: Value = serde_json::from_str(&pieces.concat()).expect("input json");
    assert_eq!(input, json!({ "location": "Paris", "unit": "celsius" }));
    let stop = events
        .iter()
        .find(|event| event["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(stop["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn thinking_comes_first_with_a_signature() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let streamed = post(
        emulator.addr(),
        MODEL,
        "invoke-with-response-stream",
        &body("emulator:thinking"),
    )
    .await;
    let single = post(emulator.addr(), MODEL, "invoke", &body("emulator:thinking")).await;

    let events: Vec<Value> = FrameReader::new(streamed.response)
        .all()
        .await
        .iter()
        .map(chunk_event)
        .collect();
    assert_eq!(events[1]["content_block"]["type"], "thinking");
    let deltas: Vec<&Value> = events
        .iter()
        .filter(|event| event["index"] == 0)
        .map(|event| &event["delta"])
        .collect();
    assert!(deltas.iter().any(|delta| delta["type"] == "thinking_delta"));
    assert!(deltas
        .iter()
        .any(|delta| delta["type"] == "signature_delta" && delta["signature"].is_string()));
    assert!(events
        .iter()
        .any(|event| event["index"] == 1 && event["content_block"]["type"] == "text"));
    let message = read_json(single.response).await;
    assert_eq!(message["content"][0]["type"], "thinking");
    assert!(message["content"][0]["signature"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert_eq!(message["content"][1]["type"], "text");
}

#[tokio::test]
async fn error_fails_before_any_frame() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    for (name, status) in [
        ("ThrottlingException", 429),
        ("ServiceUnavailableException", 503),
        ("ModelNotReadyException", 429),
        ("AccessDeniedException", 403),
    ] {
        let text = format!("emulator:error={name}");

        let exchange = post(emulator.addr(), MODEL, "invoke-with-response-stream", &body(&text)).await;

        let response = exchange.response;
        assert_eq!(response.status(), status, "{name}");
        let error_type = response.headers()["x-amzn-errortype"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(error_type.starts_with(&format!("{name}:")), "{error_type}");
        assert!(read_json(response).await["message"].is_string());
    }
}

#[tokio::test]
async fn fail_first_fails_then_succeeds_until_cleared() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let request = body("emulator:fail_first=2:ThrottlingException:retry-test");

    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            post(emulator.addr(), MODEL, "invoke", &request)
                .await
                .response
                .status()
                .as_u16(),
        );
    }
    introspect(emulator.addr(), "DELETE", "/_emulator/requests").await;
    statuses.push(
        post(emulator.addr(), MODEL, "invoke", &request)
            .await
            .response
            .status()
            .as_u16(),
    );

    assert_eq!(statuses, [429, 429, 200, 429]);
}

#[tokio::test]
async fn stream_exception_after_ends_with_an_exception_frame() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let request = body("emulator:stream_exception_after=3:throttlingException");

    let exchange = post(emulator.addr(), MODEL, "invoke-with-response-stream", &request).await;

    let messages = FrameReader::new(exchange.response).all().await;
    assert_eq!(messages.len(), 4);
    messages[..3].iter().for_each(|message| {
        chunk_event(message);
    });
    let exception = &messages[3];
    assert_eq!(header(exception, ":message-type"), Some("exception"));
    assert_eq!(header(exception, ":exception-type"), Some("throttlingException"));
    assert_eq!(header(exception, ":content-type"), Some("application/json"));
    let payload: Value = serde_json::from_slice(exception.payload()).expect("json");
    assert!(payload["message"].is_string());
}

#[tokio::test]
async fn cut_after_truncates_the_body() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let exchange = post(
        emulator.addr(),
        MODEL,
        "invoke-with-response-stream",
        &body("emulator:cut_after=2"),
    )
    .await;

    let mut reader = FrameReader::new(exchange.response);
    for _ in 0..2 {
        assert!(matches!(reader.next().await, Ok(Some(_))));
    }
    let end = reader.next().await;
    assert!(matches!(end, Err(ReadError::Body(_))), "{end:?}");
    assert_eq!(
        emulator.stats()["streams_cancelled"],
        0,
        "a deliberate cut is not a cancel"
    );
}

#[tokio::test]
async fn garbage_after_fails_the_frame_checksum() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let exchange = post(
        emulator.addr(),
        MODEL,
        "invoke-with-response-stream",
        &body("emulator:garbage_after=1"),
    )
    .await;

    let mut reader = FrameReader::new(exchange.response);
    assert!(matches!(reader.next().await, Ok(Some(_))));
    let end = reader.next().await;
    assert!(matches!(end, Err(ReadError::Frame(_))), "{end:?}");
}

fn stamp_of(event: &Value) -> Option<u128> {
    let text = event["delta"]["text"].as_str()?;
    text.strip_prefix("t=")?.strip_suffix(';')?.parse().ok()
}

#[tokio::test]
async fn stamped_deltas_are_spaced_by_delay_and_arrive_when_sent() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let request = body("emulator:stamp emulator:chunks=4 emulator:delay_ms=60");

    let exchange = post(emulator.addr(), MODEL, "invoke-with-response-stream", &request).await;

    let mut reader = FrameReader::new(exchange.response);
    let mut stamps = Vec::new();
    while let Some(message) = reader.next().await.expect("well-formed stream") {
        if let Some(sent) = stamp_of(&chunk_event(&message)) {
            let received = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_micros();
            // Each frame must leave the emulator when it is produced, not in a batch.
            assert!(
                received - sent < 40_000,
                "delta arrived {}µs after it was stamped",
                received - sent
            );
            stamps.push(sent);
        }
    }
    assert_eq!(stamps.len(), 4);
    for pair in stamps.windows(2) {
        assert!(pair[1] - pair[0] >= 55_000, "{pair:?}");
    }
}

#[tokio::test]
async fn first_delay_sends_headers_before_the_first_frame() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let started = Instant::now();

    let exchange = post(
        emulator.addr(),
        MODEL,
        "invoke-with-response-stream",
        &body("emulator:first_delay_ms=400"),
    )
    .await;

    let headers_after = started.elapsed();
    let mut reader = FrameReader::new(exchange.response);
    reader.next().await.expect("first frame");
    let first_frame_after = started.elapsed();
    assert!(
        headers_after < Duration::from_millis(200),
        "headers after {headers_after:?}"
    );
    assert!(
        first_frame_after >= Duration::from_millis(400),
        "first frame after {first_frame_after:?}"
    );
}

#[tokio::test]
async fn an_abandoned_stream_is_counted_as_cancelled_promptly() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let exchange = post(
        emulator.addr(),
        MODEL,
        "invoke-with-response-stream",
        &body("emulator:delay_ms=5000"),
    )
    .await;
    let mut reader = FrameReader::new(exchange.response);
    reader.next().await.expect("first frame");
    assert_eq!(emulator.stats()["open_streams"], 1);

    // The emulator is now asleep for 5 s before its next frame: only the closed socket can tell it.
    let closed_at = Instant::now();
    drop(reader);
    exchange.connection.abort();
    let mut stats = emulator.stats();
    while stats["streams_cancelled"] == 0 && closed_at.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        stats = emulator.stats();
    }

    let noticed_after = closed_at.elapsed();
    assert_eq!(stats["streams_cancelled"], 1, "{stats}");
    assert!(
        noticed_after < Duration::from_millis(300),
        "noticed after {noticed_after:?}"
    );
    assert_eq!(stats["open_streams"], 0);
    assert!(stats["last_cancel_unix_ms"].is_u64());
}

#[tokio::test]
async fn a_finished_stream_is_not_a_cancel() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let exchange = post(emulator.addr(), MODEL, "invoke-with-response-stream", &body("hi")).await;
    FrameReader::new(exchange.response).all().await;

    tokio::time::sleep(Duration::from_millis(50)).await;
    let stats = emulator.stats();
    assert_eq!(stats["streams_cancelled"], 0);
    assert_eq!(stats["open_streams"], 0);
    assert_eq!(stats["last_cancel_unix_ms"], Value::Null);
}

#[tokio::test]
async fn hang_never_answers() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let pending = tokio::time::timeout(
        Duration::from_millis(300),
        post(emulator.addr(), MODEL, "invoke", &body("emulator:hang")),
    )
    .await;

    assert!(pending.is_err(), "no response head expected");
    assert_eq!(emulator.requests()[0]["status"], Value::Null);
}

/// Sends `request` as raw HTTP/1.1 and returns every byte the server writes until it
/// closes the connection (or 2 s pass, which fails the test).
async fn raw_exchange(addr: std::net::SocketAddr, operation: &str, request: &Value) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = request.to_string();
    let head = format!(
        "POST /model/{}/{operation} HTTP/1.1\r\nhost: {addr}\r\nauthorization: {FAKE_SIGNATURE}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        encode_label(MODEL),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body.as_bytes()).await.expect("write body");
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut received))
        .await
        .expect("the emulator closes the connection")
        .expect("a clean close, not a reset");
    received
}

#[tokio::test]
async fn close_ends_the_connection_without_a_response_byte() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let invoked = raw_exchange(emulator.addr(), "invoke", &body("emulator:close")).await;
    let streamed = raw_exchange(emulator.addr(), "invoke-with-response-stream", &body("emulator:close")).await;

    assert_eq!(invoked, b"");
    assert_eq!(streamed, b"");
    let logged = emulator.requests();
    assert_eq!(logged.len(), 2);
    assert!(logged.iter().all(|request| request["status"].is_null()), "{logged:?}");
    assert_eq!(logged[1]["operation"], "invoke-with-response-stream");
}

#[tokio::test]
async fn fail_first_can_close_then_succeeds() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let request = body("emulator:fail_first=1:close:k1");

    let first = raw_exchange(emulator.addr(), "invoke-with-response-stream", &request).await;
    let second = post(emulator.addr(), MODEL, "invoke-with-response-stream", &request).await;

    assert_eq!(first, b"");
    assert_eq!(second.response.status(), 200);
    assert!(!FrameReader::new(second.response).all().await.is_empty());
    let statuses: Vec<Value> = emulator
        .requests()
        .iter()
        .map(|request| request["status"].clone())
        .collect();
    assert_eq!(statuses, [Value::Null, json!(200)]);
}

#[tokio::test]
async fn a_closed_connection_does_not_stop_the_server() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    raw_exchange(emulator.addr(), "invoke", &body("emulator:close")).await;
    let after = post(emulator.addr(), MODEL, "invoke", &body("hi")).await;

    assert_eq!(after.response.status(), 200);
}

#[tokio::test]
async fn empty_stream_sends_the_headers_and_no_frame() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");

    let exchange = post(
        emulator.addr(),
        MODEL,
        "invoke-with-response-stream",
        &body("emulator:empty_stream"),
    )
    .await;

    let response = exchange.response;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/vnd.amazon.eventstream");
    assert_eq!(response.headers()["x-amzn-bedrock-content-type"], "application/json");
    assert!(response.headers().contains_key("x-amzn-requestid"));
    // Chunked like every Bedrock stream, ended by the terminating chunk alone.
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    assert!(FrameReader::new(response).all().await.is_empty());
    assert_eq!(emulator.requests()[0]["status"], 200);
    assert_eq!(emulator.stats()["streams_cancelled"], 0);
}

#[tokio::test]
async fn echo_answers_with_the_received_body() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let mut request = body("emulator:echo");
    request["anthropic_beta"] = json!(["context-1m-2025-08-07"]);

    let single = post(emulator.addr(), MODEL, "invoke", &request).await;
    let streamed = post(emulator.addr(), MODEL, "invoke-with-response-stream", &request).await;

    let message = read_json(single.response).await;
    let text = message["content"][0]["text"].as_str().expect("text");
    assert_eq!(serde_json::from_str::<Value>(text).expect("json text"), request);
    let events: Vec<Value> = FrameReader::new(streamed.response)
        .all()
        .await
        .iter()
        .map(chunk_event)
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&streamed_text(&events)).expect("json text"),
        request
    );
}

#[tokio::test]
async fn introspection_routes_show_requests_and_stats() {
    let emulator = bedrock_emulator::spawn().await.expect("spawn");
    let mut bad = body("hi");
    bad["speed"] = json!("fast");
    post(emulator.addr(), MODEL, "invoke", &body("hi")).await;
    post(emulator.addr(), MODEL, "invoke", &bad).await;

    let requests = introspect(emulator.addr(), "GET", "/_emulator/requests").await;
    let stats = introspect(emulator.addr(), "GET", "/_emulator/stats").await;

    assert_eq!(requests.as_array().map(Vec::len), Some(2));
    assert_eq!(requests[0]["operation"], "invoke");
    assert_eq!(requests[0]["model_id"], MODEL);
    assert_eq!(requests[0]["status"], 200);
    assert_eq!(requests[1]["body"], bad);
    assert_eq!(requests[1]["status"], 400);
    assert_eq!(stats["requests"], 2);
    assert_eq!(stats["open_streams"], 0);
    introspect(emulator.addr(), "DELETE", "/_emulator/requests").await;
    assert_eq!(
        introspect(emulator.addr(), "GET", "/_emulator/requests").await,
        json!([])
    );
}

#[tokio::test]
async fn the_binary_announces_its_address() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_bedrock-emulator"))
        .args(["--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the binary");
    let stdout = child.stdout.take().expect("piped stdout");

    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("announces in time")
    .expect("reads stdout");

    let url = line
        .trim_end()
        .strip_prefix("LISTENING http://")
        .expect("LISTENING line");
    let addr = url.parse().expect("socket address");
    assert_eq!(introspect(addr, "GET", "/_emulator/stats").await["requests"], 0);
    child.kill().await.expect("stop the binary");
}
