use super::*;
use futures_util::StreamExt;

#[test]
fn events_are_forwarded_byte_for_byte() {
    let chunk = br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \u00e9"}}"#;
    let frame = reframe(chunk).unwrap();
    let mut want = b"event: content_block_delta\ndata: ".to_vec();
    want.extend_from_slice(chunk);
    want.extend_from_slice(b"\n\n");
    assert_eq!(frame.bytes.as_ref(), want.as_slice());
    assert!(!frame.is_stop);
}

#[test]
fn message_stop_loses_bedrock_metrics_and_reports_usage() {
    let chunk = br#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":12,"outputTokenCount":34,"invocationLatency":5,"firstByteLatency":2,"cacheReadInputTokenCount":7}}"#;
    let frame = reframe(chunk).unwrap();
    assert_eq!(
        frame.bytes.as_ref(),
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    );
    assert!(frame.is_stop);
    assert_eq!(
        frame.usage,
        Some(Usage {
            input: 12,
            output: 34,
            cache_read: 7,
            cache_write: 0,
            cache_write_1h: None,
        })
    );
}

#[test]
fn a_guardrails_action_is_removed_and_reported() {
    let chunk = br#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":1},"amazon-bedrock-guardrailAction":"INTERVENED","amazon-bedrock-trace":{"guardrail":{}}}"#;
    let frame = reframe(chunk).unwrap();
    assert_eq!(
        frame.bytes.as_ref(),
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    );
    assert!(frame.guardrail_intervened);
    let start = br#"{"type":"message_start","message":{"id":"m","amazon-bedrock-guardrailAction":"NONE"}}"#;
    let frame = reframe(start).unwrap();
    let data: serde_json::Value = serde_json::from_slice(frame.data()).unwrap();
    assert_eq!(
        data,
        serde_json::json!({"type": "message_start", "message": {"id": "m"}})
    );
    assert!(!frame.guardrail_intervened);
}

#[tokio::test]
async fn a_guardrails_stray_block_reaches_the_caller_as_well_formed_blocks() {
    // Bedrock's output intervention, as Claude Code 2.1.332 repairs it on its own Bedrock path.
    let text = collect(
        [
            &br#"{"type":"message_start","message":{"id":"m","content":[],"usage":{"input_tokens":1,"output_tokens":1}}}"#[..],
            br#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello "}}"#,
            br#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Sorry."}}"#,
            br#"{"type":"content_block_stop","index":1}"#,
            br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}"#,
            br#"{"type":"message_stop","amazon-bedrock-guardrailAction":"INTERVENED"}"#,
        ]
        .into_iter()
        .map(|chunk| Ok(Bytes::from_static(chunk)))
        .collect(),
    )
    .await;
    let frames = parse_frames(text.as_bytes()).unwrap();
    let shape: Vec<(&str, Option<u64>)> = frames.iter().map(|(k, v)| (k.as_str(), v["index"].as_u64())).collect();
    assert_eq!(
        shape,
        [
            ("message_start", None),
            ("content_block_start", Some(0)),
            ("content_block_delta", Some(0)),
            ("content_block_delta", Some(0)),
            ("content_block_stop", Some(0)),
            ("message_delta", None),
            ("message_stop", None),
        ]
    );
    assert!(!text.contains("amazon-bedrock"), "{text}");
}

#[test]
fn line_breaks_inside_json_never_split_a_data_line() {
    let frame = reframe(b"{\"type\":\n\"ping\"}").unwrap();
    assert_eq!(frame.bytes.as_ref(), b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
}

#[test]
fn the_frame_checker_refuses_anything_but_event_then_data_with_matching_type() {
    let good = b"event: ping\ndata: {\"type\":\"ping\"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let frames = parse_frames(good).unwrap();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].0, "message_stop");
    for bad in [
        &b""[..],
        b"event: ping\ndata: {\"type\":\"ping\"}\n",
        b"event: ping\ndata: {\"type\":\"ping\"}\n\n\n\n",
        b"data: {\"type\":\"ping\"}\nevent: ping\n\n",
        b"event: ping\ndata: {\"type\":\"pong\"}\n\n",
        b"event: ping\ndata: {\"type\":\"ping\"}\nid: 1\n\n",
        b"event:ping\ndata: {\"type\":\"ping\"}\n\n",
        b"event: ping\ndata: {\"type\":\n\n",
        b"event: ping\ndata: {\"type\":\"ping\xff\"}\n\n",
    ] {
        assert!(parse_frames(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn garbage_is_an_error_not_a_frame() {
    for bad in [
        &b"not json"[..],
        b"{}",
        b"{\"type\":\"a\\nb\"}",
        b"[1]",
        b"{\"type\":5}",
    ] {
        assert!(reframe(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
}

/// A stream fed by hand, as Bedrock's would be.
fn channel() -> (tokio::sync::mpsc::Sender<StreamItem>, EventStream) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    (tx, Box::pin(stream))
}

/// The caller's body over `rest`, pinging every `ping_secs`, idle timeout 12 intervals.
fn body(rest: EventStream, silent: bool, ping_secs: u64) -> SseBody {
    let log = RequestLog::new("req_test", "POST", "/v1/messages");
    let started = StartedStream {
        first: None,
        silent,
        rest,
    };
    let ping = Duration::from_secs(ping_secs);
    SseBody::new(started, ping, ping * 12, None, log)
}

async fn collect(items: Vec<StreamItem>) -> String {
    let (tx, rx) = channel();
    for item in items {
        tx.send(item).await.unwrap();
    }
    drop(tx);
    let out: Vec<_> = body(rx, false, 5).collect().await;
    out.into_iter()
        .map(|b| String::from_utf8(b.unwrap().to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn an_error_mid_stream_becomes_an_error_event_and_ends_the_stream() {
    let text = collect(vec![
        Ok(Bytes::from_static(br#"{"type":"message_start","message":{}}"#)),
        Err(ProxyError::RateLimited("slow down".into())),
    ])
    .await;
    assert!(text.ends_with("event: error\ndata: {\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\"},\"type\":\"error\"}\n\n"), "{text}");
}

#[tokio::test]
async fn a_stream_that_stops_early_ends_with_an_error_event() {
    let text = collect(vec![Ok(Bytes::from_static(
        br#"{"type":"message_start","message":{}}"#,
    ))])
    .await;
    assert!(text.contains("event: error"), "{text}");
    let complete = collect(vec![Ok(Bytes::from_static(br#"{"type":"message_stop"}"#))]).await;
    assert_eq!(complete, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
}

#[tokio::test]
async fn events_that_arrived_together_leave_in_one_chunk_and_later_ones_on_their_own() {
    let (tx, rx) = channel();
    for chunk in [
        &br#"{"type":"message_start","message":{}}"#[..],
        br#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}"#,
    ] {
        tx.send(Ok(Bytes::from_static(chunk))).await.unwrap();
    }
    let mut body = body(rx, false, 5);
    let together = body.next().await.unwrap().unwrap();
    let frames = parse_frames(&together).unwrap();
    let names: Vec<_> = frames.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["message_start", "content_block_start", "content_block_delta"]);
    tx.send(Ok(Bytes::from_static(br#"{"type":"message_stop"}"#)))
        .await
        .unwrap();
    let last = body.next().await.unwrap().unwrap();
    assert_eq!(
        last.as_ref(),
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    );
    drop(tx);
    assert!(body.next().await.is_none());
}

#[tokio::test]
async fn an_empty_stream_is_one_error_event_and_stays_ended_however_often_it_is_polled() {
    let (tx, rx) = channel();
    drop(tx);
    let mut body = body(rx, false, 5);
    let frame = body.next().await.unwrap().unwrap();
    assert!(frame.starts_with(b"event: error\n"), "{frame:?}");
    for _ in 0..3 {
        assert!(body.next().await.is_none(), "an ended body must stay ended");
    }
    assert!(body.upstream.is_none(), "the ended body let go of Bedrock's stream");
}

#[tokio::test(start_paused = true)]
async fn silence_becomes_pings_every_interval() {
    let (tx, rx) = channel();
    // Bedrock was already silent for one interval before the stream began: ping at once.
    let mut stream = body(rx, true, 10);
    let t0 = tokio::time::Instant::now();
    assert_eq!(stream.next().await.unwrap().unwrap().as_ref(), PING_FRAME);
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(stream.next().await.unwrap().unwrap().as_ref(), PING_FRAME);
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
    assert_eq!(stream.next().await.unwrap().unwrap().as_ref(), PING_FRAME);
    tx.send(Ok(Bytes::from_static(br#"{"type":"message_stop"}"#)))
        .await
        .unwrap();
    assert!(stream
        .next()
        .await
        .unwrap()
        .unwrap()
        .starts_with(b"event: message_stop"));
}
