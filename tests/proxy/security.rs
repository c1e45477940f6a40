//! Regression tests for the seed's own usage and the holes a security read found (issue 21):
//! `POST /` as the seed's curl sends it, differing credentials, arithmetic on caller numbers,
//! bodies built to exhaust memory, and Bedrock's AccessDenied detail.

use super::*;

/// The seed's README: `curl -X POST https://<function-url>/ -H "Authorization: Bearer …"
/// -H "Content-Type: application/json" -d '{…}'`, with no `anthropic-version` header.
fn seed_curl(body: &Value) -> axum::http::Request<Body> {
    axum::http::Request::builder()
        .method("POST")
        .uri("/")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn the_seeds_curl_to_the_root_answers_plain_and_streamed() {
    let h = harness(&[]).await;
    let plain = send(
        &h.app,
        seed_curl(&json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hello"}]})),
    )
    .await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert_eq!(plain.json()["type"], "message");
    assert_eq!(plain.json()["role"], "assistant");

    let streamed = send(
        &h.app,
        seed_curl(&json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "Hello"}]})),
    )
    .await;
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    assert!(streamed.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events: Vec<String> = parse_sse(&streamed.text()).into_iter().map(|(e, _)| e).collect();
    assert_eq!(events.first().map(String::as_str), Some("message_start"));
    assert_eq!(events.last().map(String::as_str), Some("message_stop"));
    assert_eq!(h.emulator.requests().len(), 2, "both reached Bedrock");
}

#[tokio::test]
async fn two_differing_credentials_are_refused_and_two_equal_ones_accepted() {
    let h = harness(&[]).await;
    let models = |api_key: &str| {
        axum::http::Request::get("/v1/models")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("x-api-key", api_key)
            .body(Body::empty())
            .unwrap()
    };
    let differing = send(&h.app, models("some-other-token-0123456789")).await;
    assert_eq!(differing.status, 401, "{}", differing.text());
    assert_eq!(differing.error_type(), "authentication_error");
    let equal = send(&h.app, models(TOKEN)).await;
    assert_eq!(equal.status, 200, "{}", equal.text());

    // The same for a message: nothing reaches Bedrock.
    let req = request("POST", "/v1/messages", Some(&message("hi", false)))
        .header("x-api-key", "some-other-token-0123456789")
        .body(Body::from(message("hi", false).to_string()))
        .unwrap();
    assert_eq!(send(&h.app, req).await.status, 401);
    assert!(h.emulator.requests().is_empty());
}

#[tokio::test]
async fn count_tokens_with_the_largest_thinking_budget_is_not_a_server_error() {
    let h = harness(&[]).await;
    let body = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "enabled", "budget_tokens": u64::MAX}});
    let reply = post(&h.app, "/v1/messages/count_tokens", &body).await;
    // Before the fix, `budget_tokens + 1` overflowed: a panic (500) in debug, a 0 in release.
    assert!(reply.status.as_u16() < 500, "{} {}", reply.status, reply.text());
    if reply.status == 200 {
        assert!(reply.json()["input_tokens"].as_u64().is_some(), "{}", reply.text());
    } else {
        assert_eq!(reply.error_type(), "invalid_request_error");
    }
}

#[tokio::test]
async fn a_body_of_millions_of_tiny_values_is_a_413_before_it_is_parsed() {
    let h = harness(&[]).await;
    // ~5 MiB: under the body limit, but 2.6 million JSON values, which parsed would take
    // hundreds of MB (a `serde_json::Value` is 32+ bytes each, plus the vectors).
    let mut body =
        br#"{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"x":["#.to_vec();
    body.extend(std::iter::repeat_n(b"0,".as_slice(), 2_600_000).flatten());
    body.extend_from_slice(b"0]}");
    let req = request("POST", "/v1/messages", Some(&Value::Null))
        .body(Body::from(body))
        .unwrap();
    let reply = send(&h.app, req).await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(reply.error_type(), "request_too_large");
    assert!(h.emulator.requests().is_empty());
}

#[tokio::test]
async fn bedrocks_access_denied_detail_stays_in_the_log() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let h = harness(&[("UPSTREAM_MAX_ATTEMPTS", "1")]).await;
    for stream in [false, true] {
        let reply = post(
            &h.app,
            "/v1/messages",
            &message("emulator:error=AccessDeniedException", stream),
        )
        .await;
        assert_eq!(reply.status, 403, "{}", reply.text());
        assert_eq!(reply.error_type(), "permission_error");
        let text = reply.json()["error"]["message"].as_str().unwrap().to_string();
        // The emulator's detail, which from real Bedrock names the role and the account.
        assert!(!text.contains("You don't have access"), "{text}");
        assert!(text.contains("request-id"), "points the operator at the log: {text}");
        let line = logs.request_line(reply.headers["request-id"].to_str().unwrap());
        assert!(
            line["error"]
                .as_str()
                .unwrap_or_default()
                .contains("You don't have access"),
            "the detail belongs in the log: {line}"
        );
    }
}
