//! Streams: SSE re-framing and timing, pings, errors mid-stream, callers leaving, Lambda deadlines.

use super::*;

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
