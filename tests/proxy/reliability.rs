//! Bedrock's errors and failures: status mapping, retries before the first byte, hangs, dropped
//! connections, missing credentials, panics.

use super::*;

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
