use super::*;

#[test]
fn events_are_split_at_blank_lines_and_keep_their_data_byte_for_byte() {
    let block =
        Bytes::from_static(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0}\n\n");
    let event = parse_event(&block).unwrap();
    assert_eq!(event.name, "content_block_delta");
    assert_eq!(&event.data[..], b"{\"type\":\"content_block_delta\",\"index\":0}");
    let unnamed = parse_event(&Bytes::from_static(b"data:{\"type\":\"ping\"}\r\n\n")).unwrap();
    assert_eq!(unnamed.name, "ping");
    assert!(parse_event(&Bytes::from_static(b": a comment\n\n")).is_none());
    let multi = parse_event(&Bytes::from_static(b"event: x\ndata: a\ndata: b\n\n")).unwrap();
    assert_eq!(&multi.data[..], b"a\nb");
}

#[test]
fn anthropic_errors_map_to_ours() {
    let cases = [
        (
            400,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"m"}}"#,
            400,
            "invalid_request_error",
        ),
        (
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"m"}}"#,
            429,
            "rate_limit_error",
        ),
        (
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"m"}}"#,
            529,
            "overloaded_error",
        ),
        (
            403,
            r#"{"message":"The security token included in the request is invalid."}"#,
            403,
            "permission_error",
        ),
        (503, "", 529, "overloaded_error"),
        (500, "not json", 500, "api_error"),
    ];
    for (status, body, want_status, want_type) in cases {
        let error = error_from_answer(StatusCode::from_u16(status).unwrap(), body.as_bytes());
        let (s, t) = error.status_and_type();
        assert_eq!((s.as_u16(), t), (want_status, want_type), "{status} {body}");
    }
    let kept = error_from_answer(
        StatusCode::BAD_REQUEST,
        br#"{"type":"error","error":{"type":"invalid_request_error","message":"messages.1.output_config: Extra inputs are not permitted"}}"#,
    );
    assert_eq!(
        kept.to_string(),
        "messages.1.output_config: Extra inputs are not permitted"
    );
}
