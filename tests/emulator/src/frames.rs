//! Event-stream frames as InvokeModelWithResponseStream sends them, written with
//! smithy-rs's own encoder so the bytes are exactly what the AWS SDK expects.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::ids;

/// Encoding fails only for absurd header or payload sizes; the caller ends the stream.
pub type FrameResult = Result<Bytes, aws_smithy_eventstream::error::Error>;

fn header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

fn encode(message: &Message) -> FrameResult {
    let mut buffer = Vec::new();
    write_message_to(message, &mut buffer)?;
    Ok(Bytes::from(buffer))
}

/// A `chunk` event carrying one Anthropic stream event, base64 in `bytes`, padded by `p`.
pub fn chunk(event: &Value, seq: usize) -> FrameResult {
    let bytes = base64::engine::general_purpose::STANDARD.encode(event.to_string());
    let payload = json!({ "bytes": bytes, "p": ids::padding(seq) }).to_string();
    let message = Message::new(payload)
        .add_header(header(":event-type", "chunk"))
        .add_header(header(":content-type", "application/json"))
        .add_header(header(":message-type", "event"));
    encode(&message)
}

/// A modeled exception frame, e.g. `throttlingException`, that ends the stream.
pub fn exception(exception_type: &str, message: &str) -> FrameResult {
    let payload = json!({ "message": message }).to_string();
    let message = Message::new(payload)
        .add_header(header(":exception-type", exception_type))
        .add_header(header(":content-type", "application/json"))
        .add_header(header(":message-type", "exception"));
    encode(&message)
}

/// A default message for each stream exception type, worded like Bedrock's.
pub fn exception_message(exception_type: &str) -> &'static str {
    match exception_type {
        "throttlingException" => "Too many requests, please wait before trying again.",
        "modelStreamErrorException" => "The model stream encountered an error.",
        "validationException" => "Input validation failed during streaming.",
        "modelTimeoutException" => "Model has timed out in processing the request.",
        "serviceUnavailableException" => "Bedrock is unable to process your request.",
        _ => "The system encountered an unexpected error during processing. Try your request again.",
    }
}

/// A real chunk frame whose message checksum is flipped: well-formed up to the last
/// four bytes, so a decoder must check the CRC to notice.
pub fn garbage(seq: usize) -> FrameResult {
    let event = json!({ "type": "ping" });
    let mut bytes = chunk(&event, seq)?.to_vec();
    if let Some(last) = bytes.last_mut() {
        *last ^= 0xff;
    }
    Ok(Bytes::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::read_message_from;

    fn string_header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
        message
            .headers()
            .iter()
            .find(|header| header.name().as_str() == name)
            .and_then(|header| header.value().as_string().ok())
            .map(|value| value.as_str())
    }

    #[test]
    fn chunk_frames_round_trip_through_the_sdk_decoder() {
        let event = json!({ "type": "message_stop" });
        let frame = chunk(&event, 3).expect("encodes");
        let message = read_message_from(frame).expect("decodes");
        assert_eq!(string_header(&message, ":message-type"), Some("event"));
        assert_eq!(string_header(&message, ":event-type"), Some("chunk"));
        let payload: Value = serde_json::from_slice(message.payload()).expect("json payload");
        let bytes = payload["bytes"].as_str().expect("bytes field");
        let decoded = base64::engine::general_purpose::STANDARD.decode(bytes).expect("base64");
        assert_eq!(serde_json::from_slice::<Value>(&decoded).expect("event json"), event);
    }

    #[test]
    fn garbage_fails_the_checksum() {
        let frame = garbage(0).expect("encodes");
        assert!(read_message_from(frame).is_err());
    }
}
