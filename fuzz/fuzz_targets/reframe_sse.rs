//! Any chunk Bedrock might send: refused, or exactly one SSE frame whose data is JSON with the
//! event's type and none of Bedrock's own `amazon-bedrock-*` keys (metrics, guardrail action).
#![no_main]

use bedrock_anthropic_proxy::sse::{parse_frames, reframe};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = reframe(data) else { return };
    let frames = parse_frames(&frame.bytes).expect("a well-formed SSE frame");
    assert_eq!(frames.len(), 1, "exactly one frame");
    let top = frames[0].1.as_object().into_iter().flatten();
    assert!(top.map(|(k, _)| k).all(|k| !k.starts_with("amazon-bedrock-")), "no Bedrock key");
});
