//! Server-sent events as the Anthropic API streams them, which is what Bedrock's Anthropic
//! Messages endpoint (Mantle) answers with: `event: <type>\ndata: <json>\n\n`, the name
//! equal to the data's `type` (Anthropic API docs, "Streaming Messages").

use bytes::Bytes;
use serde_json::{json, Value};

/// One event frame; the name is the event's own `type` (`message_start`, `error`, ...).
pub fn event(data: &Value) -> Bytes {
    let name = data.get("type").and_then(Value::as_str).unwrap_or("message");
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// `message_start` followed by a `ping`, in one write: Anthropic's stream sends a ping
/// right after `message_start`, so a client (or a proxy passing the stream on) must
/// expect one. Riding along with `message_start` keeps the event counts of
/// `cut_after`/`stream_exception_after` the same as on the Runtime side.
pub fn message_start_and_ping(message_start: &Value) -> Bytes {
    let mut frame = event(message_start).to_vec();
    frame.extend_from_slice(&event(&json!({ "type": "ping" })));
    Bytes::from(frame)
}

/// A frame whose data is cut in the middle of its JSON, as a broken upstream might send:
/// an SSE parser accepts it, a JSON parser must not.
pub fn garbage() -> Bytes {
    Bytes::from_static(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"ind\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_name_is_the_data_type() {
        let frame = event(&json!({ "type": "message_stop" }));
        assert_eq!(
            &frame[..],
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
        );
    }

    #[test]
    fn message_start_is_followed_by_a_ping() {
        let frame = message_start_and_ping(&json!({ "type": "message_start" }));
        let text = std::str::from_utf8(&frame).expect("utf-8");
        assert_eq!(
            text,
            "event: message_start\ndata: {\"type\":\"message_start\"}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n"
        );
    }

    #[test]
    fn garbage_is_sse_but_not_json() {
        let frame = garbage();
        let text = std::str::from_utf8(&frame).expect("utf-8");
        let data = text
            .lines()
            .find_map(|line| line.strip_prefix("data: "))
            .expect("data line");
        assert!(serde_json::from_str::<Value>(data).is_err());
        assert!(text.ends_with("\n\n"));
    }
}
