//! Any chunk Bedrock might send: refused, or exactly one SSE frame whose data is JSON with the
//! event's type and no Bedrock metrics.
#![no_main]

use bedrock_anthropic_proxy::sse::reframe;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = reframe(data) else { return };
    let text = std::str::from_utf8(&frame.bytes).expect("frames are UTF-8");
    let body = text.strip_suffix("\n\n").expect("frame ends with a blank line");
    let mut lines = body.split('\n');
    let event = lines.next().and_then(|l| l.strip_prefix("event: ")).expect("event line");
    let data = lines.next().and_then(|l| l.strip_prefix("data: ")).expect("data line");
    assert!(lines.next().is_none(), "one data line");
    let value: serde_json::Value = serde_json::from_str(data).expect("data is JSON");
    assert_eq!(value["type"].as_str(), Some(event));
    assert!(value.get("amazon-bedrock-invocationMetrics").is_none());
});
