//! Property tests: any chunk Bedrock might send is either re-framed as exactly one valid SSE
//! event with JSON data, or refused; never a panic, never a broken frame.
use super::*;
use proptest::prelude::*;

fn check_frame(frame: &Frame) -> Result<(), TestCaseError> {
    let frames = parse_frames(&frame.bytes).map_err(TestCaseError::fail)?;
    prop_assert_eq!(frames.len(), 1, "exactly one frame");
    let top = frames[0].1.as_object().into_iter().flatten();
    prop_assert!(
        top.map(|(k, _)| k).all(|k| !k.starts_with(BEDROCK_PREFIX)),
        "no Bedrock key"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(frame) = reframe(&bytes) {
            check_frame(&frame)?;
        }
    }

    #[test]
    fn event_shaped_json_is_always_one_valid_frame(
        kind in "[a-z_]{1,20}|message_stop|[a-z]{1,3}\n[a-z]",
        text in ".{0,40}",
        pretty in any::<bool>(),
        metrics in any::<bool>(),
        guardrail in prop::option::of("INTERVENED|NONE|.{0,5}"),
        index in prop::option::of(0u64..4),
    ) {
        let mut value = serde_json::json!({"type": kind, "delta": {"type": "text_delta", "text": text}});
        if metrics {
            value[crate::translate::answer::METRICS_KEY] = serde_json::json!({"inputTokenCount": 1});
        }
        if let Some(action) = guardrail {
            value[crate::translate::answer::GUARDRAIL_ACTION_KEY] = action.into();
        }
        if let Some(index) = index {
            value["index"] = index.into();
        }
        let bytes = if pretty { serde_json::to_vec_pretty(&value) } else { serde_json::to_vec(&value) }.unwrap();
        match reframe(&bytes) {
            Ok(frame) => check_frame(&frame)?,
            Err(_) => prop_assert!(kind.contains('\n'), "refused a valid event type {kind:?}"),
        }
    }
}
