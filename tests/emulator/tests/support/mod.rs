//! Shared helpers: a plain HTTP/1.1 client over hyper, request bodies, and an
//! event-stream reader built on smithy-rs's own frame decoder.

use std::net::SocketAddr;

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// What the SDK's SigV4 header starts with; the emulator checks no more than that.
pub const FAKE_SIGNATURE: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";

pub const MODEL: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// A response plus the task driving its connection; aborting the task closes the socket.
pub struct Exchange {
    pub response: Response<Incoming>,
    pub connection: JoinHandle<()>,
}

/// Sends one request on a fresh connection.
pub async fn send(addr: SocketAddr, method: &str, path: &str, body: Bytes, signed: bool) -> Exchange {
    send_with_headers(addr, method, path, body, signed, &[]).await
}

/// Sends one request with extra headers (e.g. `anthropic-beta`) on a fresh connection.
pub async fn send_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Bytes,
    signed: bool,
    headers: &[(&str, &str)],
) -> Exchange {
    let stream = TcpStream::connect(addr).await.expect("connect to the emulator");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http/1.1 handshake");
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .header("accept", "application/json");
    if signed {
        request = request.header("authorization", FAKE_SIGNATURE);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body)).expect("valid request");
    let response = sender.send_request(request).await.expect("response head");
    Exchange { response, connection }
}

/// A signed POST of a JSON body to `/model/{model}/{operation}`.
pub async fn post(addr: SocketAddr, model: &str, operation: &str, body: &Value) -> Exchange {
    let path = format!("/model/{}/{operation}", encode_label(model));
    send(addr, "POST", &path, Bytes::from(body.to_string()), true).await
}

/// A signed POST with extra headers, as [`post`].
pub async fn post_with_headers(
    addr: SocketAddr,
    model: &str,
    operation: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> Exchange {
    let path = format!("/model/{}/{operation}", encode_label(model));
    send_with_headers(addr, "POST", &path, Bytes::from(body.to_string()), true, headers).await
}

/// Percent-encodes a URI label the way the SDK does (`:` and `/` included).
pub fn encode_label(label: &str) -> String {
    label
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(byte).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A minimal valid InvokeModel body whose only user message says `text`.
pub fn body(text: &str) -> Value {
    json!({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{ "role": "user", "content": text }]
    })
}

/// The whole body of a response that is expected to end cleanly.
pub async fn read_all(response: Response<Incoming>) -> Bytes {
    response.into_body().collect().await.expect("complete body").to_bytes()
}

/// The body as JSON.
pub async fn read_json(response: Response<Incoming>) -> Value {
    serde_json::from_slice(&read_all(response).await).expect("json body")
}

/// A GET or DELETE on an introspection route, as JSON (or null for an empty body).
pub async fn introspect(addr: SocketAddr, method: &str, path: &str) -> Value {
    let exchange = send(addr, method, path, Bytes::new(), false).await;
    let bytes = read_all(exchange.response).await;
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("json body")
    }
}

/// Reads event-stream messages off a response body as they arrive.
pub struct FrameReader {
    body: Incoming,
    buffer: BytesMut,
    decoder: MessageFrameDecoder,
}

/// Why a stream of frames ended other than cleanly.
#[derive(Debug)]
#[expect(dead_code, reason = "the fields are read through Debug in assertion messages")]
pub enum ReadError {
    /// The HTTP body failed (truncated chunked encoding, reset).
    Body(hyper::Error),
    /// The bytes were not a valid frame.
    Frame(aws_smithy_eventstream::error::Error),
    /// The body ended in the middle of a frame.
    Trailing(usize),
}

impl FrameReader {
    pub fn new(response: Response<Incoming>) -> Self {
        Self {
            body: response.into_body(),
            buffer: BytesMut::new(),
            decoder: MessageFrameDecoder::new(),
        }
    }

    /// The next message, `Ok(None)` at a clean end of the body.
    pub async fn next(&mut self) -> Result<Option<Message>, ReadError> {
        loop {
            match self.decoder.decode_frame(&mut self.buffer).map_err(ReadError::Frame)? {
                DecodedFrame::Complete(message) => return Ok(Some(message)),
                DecodedFrame::Incomplete => {}
            }
            match self.body.frame().await {
                None if self.buffer.has_remaining() => return Err(ReadError::Trailing(self.buffer.remaining())),
                None => return Ok(None),
                Some(Err(error)) => return Err(ReadError::Body(error)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// Every message up to the end, failing the test on a broken stream.
    pub async fn all(mut self) -> Vec<Message> {
        let mut messages = Vec::new();
        while let Some(message) = self.next().await.expect("well-formed stream") {
            messages.push(message);
        }
        messages
    }
}

/// A string header of an event-stream message.
pub fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|header| header.name().as_str() == name)
        .and_then(|header| header.value().as_string().ok())
        .map(|value| value.as_str())
}

/// The Anthropic event inside a chunk frame, after checking the frame's headers.
pub fn chunk_event(message: &Message) -> Value {
    assert_eq!(header(message, ":message-type"), Some("event"));
    assert_eq!(header(message, ":event-type"), Some("chunk"));
    assert_eq!(header(message, ":content-type"), Some("application/json"));
    let payload: Value = serde_json::from_slice(message.payload()).expect("chunk payload is json");
    assert!(payload["p"].is_string(), "chunk payload has padding");
    let bytes = payload["bytes"].as_str().expect("chunk payload has bytes");
    let event = base64::engine::general_purpose::STANDARD
        .decode(bytes)
        .expect("bytes are base64");
    serde_json::from_slice(&event).expect("event is json")
}

/// The `type` of each event.
pub fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["type"].as_str().unwrap_or("?"))
        .collect()
}

/// The concatenated `text_delta` texts.
pub fn streamed_text(events: &[Value]) -> String {
    events
        .iter()
        .filter(|event| event["delta"]["type"] == "text_delta")
        .filter_map(|event| event["delta"]["text"].as_str())
        .collect()
}

/// A SigV4 `Authorization` header scoped to `bedrock-mantle`, written by hand: the
/// emulator checks the scope and the signed-header list, never the signature's math,
/// so a made-up signature passes. The signed headers are all sent by [`mantle_post`].
pub const MANTLE_SIGNATURE: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock-mantle/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=0123abcd";

/// The date the hand-written signature claims, sent as `x-amz-date`.
pub const AMZ_DATE: &str = "20250101T000000Z";

/// The model Mantle takes: no region prefix.
pub const MANTLE_MODEL: &str = "anthropic.claude-opus-5-5";

/// Mantle's Messages path as Claude Code calls it.
pub const MANTLE_MESSAGES: &str = "/anthropic/v1/messages?beta=true";

/// Mantle's count_tokens path.
pub const MANTLE_COUNT_TOKENS: &str = "/anthropic/v1/messages/count_tokens";

/// The required version header.
pub const VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");

/// A POST to Mantle signed for `bedrock-mantle` (with `x-amz-date`), plus `headers`.
pub async fn mantle_post(addr: SocketAddr, path: &str, body: &Value, headers: &[(&str, &str)]) -> Exchange {
    let mut all = vec![("authorization", MANTLE_SIGNATURE), ("x-amz-date", AMZ_DATE)];
    all.extend_from_slice(headers);
    send_with_headers(addr, "POST", path, Bytes::from(body.to_string()), false, &all).await
}

/// A minimal first-party Messages body for Mantle whose only user message says `text`.
pub fn mantle_body(text: &str, stream: bool) -> Value {
    json!({
        "model": MANTLE_MODEL,
        "max_tokens": 64,
        "stream": stream,
        "messages": [{ "role": "user", "content": text }]
    })
}

/// `{"type":"error","error":{"type":<error_type>,"message":<message>}}`.
pub fn anthropic_error(error_type: &str, message: &str) -> Value {
    json!({ "type": "error", "error": { "type": error_type, "message": message } })
}

/// Reads SSE events off a response body as they arrive, checking each frame's form:
/// exactly `event: <name>\ndata: <json>\n\n`, the name equal to the data's `type`.
pub struct SseReader {
    body: Incoming,
    buffer: Vec<u8>,
}

/// One SSE event: its name and its parsed data.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub name: String,
    pub data: Value,
}

impl SseReader {
    pub fn new(response: Response<Incoming>) -> Self {
        Self {
            body: response.into_body(),
            buffer: Vec::new(),
        }
    }

    /// The next event, `Ok(None)` at a clean end of the body. A frame that is not
    /// well-formed fails the test; a body error (a cut) is returned.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, hyper::Error> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|pair| pair == b"\n\n") {
                let frame: Vec<u8> = self.buffer.drain(..end + 2).collect();
                return Ok(Some(parse_sse_frame(&frame)));
            }
            match self.body.frame().await {
                None => {
                    assert!(
                        self.buffer.is_empty(),
                        "trailing bytes {:?}",
                        String::from_utf8_lossy(&self.buffer)
                    );
                    return Ok(None);
                }
                Some(Err(error)) => return Err(error),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// The raw text of the next frame, unchecked (for garbage).
    pub async fn next_raw(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|pair| pair == b"\n\n") {
                let frame: Vec<u8> = self.buffer.drain(..end + 2).collect();
                return Some(String::from_utf8(frame).expect("utf-8"));
            }
            match self.body.frame().await {
                None | Some(Err(_)) => return None,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// Every event up to the end, failing the test on a broken stream.
    pub async fn all(mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await.expect("well-formed stream") {
            events.push(event);
        }
        events
    }
}

fn parse_sse_frame(frame: &[u8]) -> SseEvent {
    let text = std::str::from_utf8(frame).expect("utf-8 frame");
    let lines: Vec<&str> = text
        .strip_suffix("\n\n")
        .expect("ends with a blank line")
        .split('\n')
        .collect();
    let [event_line, data_line] = lines.as_slice() else {
        panic!("an event line and a data line, got {text:?}");
    };
    let name = event_line.strip_prefix("event: ").expect("event line").to_owned();
    let data: Value = serde_json::from_str(data_line.strip_prefix("data: ").expect("data line")).expect("json data");
    assert_eq!(
        data["type"].as_str(),
        Some(name.as_str()),
        "event name is the data type: {text:?}"
    );
    SseEvent { name, data }
}

/// The event names, in order.
pub fn names(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|event| event.name.as_str()).collect()
}

/// The event data, in order.
pub fn data(events: &[SseEvent]) -> Vec<Value> {
    events.iter().map(|event| event.data.clone()).collect()
}
