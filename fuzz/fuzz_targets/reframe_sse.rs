//! Any chunk Bedrock might send: refused, or exactly one SSE frame whose data is JSON with the
//! event's type and no Bedrock metrics.
#![no_main]

use bedrock_anthropic_proxy::sse::{parse_frames, reframe};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = reframe(data) else { return };
    let frames = parse_frames(&frame.bytes).expect("a well-formed SSE frame");
    assert_eq!(frames.len(), 1, "exactly one frame");
    assert!(frames[0].1.get("amazon-bedrock-invocationMetrics").is_none());
});
